package raft

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// productionTiming restores DefaultConfig's clock in a test cluster.
func productionTiming(c *Config) {
	d := DefaultConfig()
	c.TickInterval, c.ElectionTick, c.HeartbeatTick = d.TickInterval, d.ElectionTick, d.HeartbeatTick
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// benchPropose: 3 members over loopback gRPC, each persisting with fsync
// to its own bbolt file; proposers concurrent proposers of 256-byte
// entries on the leader.
func benchPropose(b *testing.B, proposers int) {
	c := newCluster(b, grpcNet, 3, productionTiming)
	lead := c.leader(c.ids, 10*time.Second)
	n := c.node(lead)
	value := strings.Repeat("v", 256-len("key-000000="))
	var next atomic.Int64
	lat := make([][]time.Duration, proposers)
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for p := 0; p < proposers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				_, err := n.Propose(ctx, kvOp(fmt.Sprintf("key-%06d", i%100000), value))
				lat[p] = append(lat[p], time.Since(t0))
				cancel()
				if err != nil {
					failed.Add(1)
				}
			}
		}(p)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d proposals failed", f)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "proposals/s")
	b.ReportMetric(float64(percentile(all, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(all, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkPropose1(b *testing.B)  { benchPropose(b, 1) }
func BenchmarkPropose16(b *testing.B) { benchPropose(b, 16) }
func BenchmarkPropose64(b *testing.B) { benchPropose(b, 64) }

// BenchmarkFailover measures, with the default timing, the time from
// stopping the leader's process (its connections close, as when a process
// dies) to the next write committed and applied on a surviving member.
// "fast" is the default (FastFailover); "timeout" waits out the election
// timeout, which is also what a silent failure (a partition, a dead
// machine) costs.
func BenchmarkFailover(b *testing.B) {
	for _, fast := range []bool{true, false} {
		name := "fast"
		if !fast {
			name = "timeout"
		}
		b.Run(name, func(b *testing.B) {
			c := newCluster(b, grpcNet, 3, func(cfg *Config) {
				productionTiming(cfg)
				cfg.FastFailover = fast
			})
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				lead := c.leader(c.ids, 20*time.Second)
				idx := c.mustPut(lead, "warm", fmt.Sprint(i))
				c.converged(c.ids, idx, 10*time.Second)
				rest := without(c.ids, lead)
				t0 := time.Now()
				c.kill(lead)
				for k := 0; ; k++ {
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					_, err := c.node(rest[k%2]).Propose(ctx, kvOp("failover", fmt.Sprint(i)))
					cancel()
					if err == nil {
						break
					}
					if time.Since(t0) > 30*time.Second {
						b.Fatalf("no commit 30s after the leader died: %v", err)
					}
					if ctx.Err() == nil {
						time.Sleep(5 * time.Millisecond)
					}
				}
				took = append(took, time.Since(t0))
				c.start(lead, nil)
			}
			slices.Sort(took)
			b.ReportMetric(float64(percentile(took, 0.5).Milliseconds()), "p50-ms")
			b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
			b.ReportMetric(0, "ns/op")
			b.Logf("failover times: %v", took)
		})
	}
}
