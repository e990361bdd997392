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
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793", "etcd client URLs, comma-separated")
	clients := flag.String("clients", "1,16,64", "client counts to run, comma-separated")
	writes := flag.Int("writes", 4000, "writes per run")
	pids := flag.String("pids", "", "the etcd members' process IDs, comma-separated, to print their CPU time per write (run.sh passes them)")
	flag.Parse()
	var members []int
	for _, p := range strings.Split(*pids, ",") {
		var pid int
		if p == "" {
			continue
		}
		if _, err := fmt.Sscan(p, &pid); err != nil || pid < 1 {
			log.Fatalf("-pids: %q is not a process ID", p)
		}
		members = append(members, pid)
	}
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
		cpu0, self0 := membersCPU(members), selfCPU()
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
		cpu1, self1 := membersCPU(members), selfCPU()
		all := slices.Concat(lat...)
		slices.Sort(all)
		pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / 1e6 }
		fmt.Printf("etcd clients=%d\t%d writes\t%.0f writes/s\tp50 %.2f ms\tp99 %.2f ms\n",
			n, len(all), float64(len(all))/elapsed.Seconds(), pct(0.5), pct(0.99))
		if len(members) > 0 {
			// The same figures as BenchmarkControlAPIWrite's procs=separate:
			// each member's CPU per write, most first (the leader's is
			// not told apart: clientv3 spreads its calls over every
			// member, which forward them to the leader), and the total.
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(len(all)) }
			var each []float64
			total := self1 - self0
			for i := range members {
				each = append(each, per(cpu1[i]-cpu0[i]))
				total += cpu1[i] - cpu0[i]
			}
			slices.Sort(each)
			slices.Reverse(each)
			fmt.Printf("\tmember-cpu-us/write %.0f\tclient-cpu-us/write %.0f\ttotal-cpu-us/write %.0f\n", each, per(self1-self0), per(total))
		}
		for _, c := range cls {
			c.Close()
		}
	}
}

// membersCPU returns the CPU time (user and system) each process has
// used so far, from /proc/PID/stat (fields 14 and 15, in Linux's clock
// ticks of 1/100 s); 0 for one that cannot be read.
func membersCPU(pids []int) []time.Duration {
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		var utime, stime int64
		fmt.Sscan(f[11], &utime)
		fmt.Sscan(f[12], &stime)
		out[i] = time.Duration(utime+stime) * (time.Second / 100)
	}
	return out
}

// selfCPU returns the CPU time this process, the clients, has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
