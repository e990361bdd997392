// Command etcd is the etcd side of BenchmarkControlAPIWrite
// (swarm/swarmtest/writebench_test.go): N clients, each waiting for its
// answer before the next call, put 256-byte values into a three-member
// etcd cluster through clientv3, and it prints writes/s, p50 and p99 as the
// Go benchmark does, so that both can be put side by side from one run on
// one machine. run.sh starts Debian's etcd-server (3.4) on loopback and runs
// it. It is its own module so that the project's go.mod does not take in
// etcd's client.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793", "etcd client URLs, comma-separated")
	clients := flag.String("clients", "1,16,64", "client counts to run, comma-separated")
	writes := flag.Int("writes", 4000, "writes per run")
	flag.Parse()
	eps := strings.Split(*endpoints, ",")
	val := strings.Repeat("x", 256)
	for _, cs := range strings.Split(*clients, ",") {
		var n int
		if _, err := fmt.Sscan(cs, &n); err != nil || n < 1 {
			log.Fatalf("-clients: %q is not a positive count", cs)
		}
		var cls []*clientv3.Client
		for range n {
			c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
			if err != nil {
				log.Fatal(err)
			}
			cls = append(cls, c)
		}
		var next atomic.Int64
		lat := make([][]time.Duration, n)
		var wg sync.WaitGroup
		start := time.Now()
		for i, c := range cls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := next.Add(1); k <= int64(*writes); k = next.Add(1) {
					t0 := time.Now()
					if _, err := c.Put(context.Background(), fmt.Sprintf("k-%d-%d", i, k), val); err != nil {
						log.Fatal(err)
					}
					lat[i] = append(lat[i], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		all := slices.Concat(lat...)
		slices.Sort(all)
		pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / 1e6 }
		fmt.Printf("etcd clients=%d\t%d writes\t%.0f writes/s\tp50 %.2f ms\tp99 %.2f ms\n",
			n, len(all), float64(len(all))/elapsed.Seconds(), pct(0.5), pct(0.99))
		for _, c := range cls {
			c.Close()
		}
	}
}
