package gossip

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// benchConfig is the default configuration on 127.0.0.1 with a free port.
func benchConfig(b *testing.B, ca *testCA, id string) Config {
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.BindAddr = "127.0.0.1"
	cfg.BindPort = 0
	cfg.PrimaryKey = testKey(1)
	cfg.Identity = ca.issue(b, id)
	cfg.Verifier = NewCertPoolVerifier(ca.pool)
	cfg.Logger = testutil.DiscardLogger()
	return cfg
}

// BenchmarkConvergence measures, for one entry written on a random member,
// the time until every member's watcher has seen it: gossip dissemination
// alone (push/pull every 30 s scaled up with the cluster plays no part at
// these times). It reports p50 and p99 over the iterations.
//
//	go test -run '^$' -bench 'Convergence/members=100$' -benchtime 200x ./mesh/gossip/
//
// The members probe each other with memberlist's LAN timing (every second)
// rather than the default's (every 200 ms): 100 members in one process on 2
// cores, probing five times a second each, starve the process and declare
// each other dead while the cluster forms, which measures starvation, not
// dissemination (GossipInterval, GossipNodes and RetransmitMult are the
// default's).
func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) { benchConvergence(b, n, lanDetection) })
	}
	// 1,000 members in one process on 2 cores cannot keep memberlist's
	// 1 s probe: each member spends its slice of the CPU late, and
	// members declare each other dead. This variant probes every 5 s
	// with a patient suspicion, to measure dissemination rather than churn,
	// and gives a join's push/pull 30 s rather than 10 (with 10 s, the
	// 269th member's joins timed out on all three seeds).
	b.Run("members=1000,patient", func(b *testing.B) {
		benchConvergence(b, 1000, func(c Config) Config {
			c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = 5*time.Second, 3*time.Second, 8
			c.TCPTimeout = 30 * time.Second
			return c
		})
	})
}

// lanDetection is memberlist's LAN failure detection: probe every second,
// 500 ms to answer, suspicion ×4 (up to ×6 unconfirmed).
func lanDetection(c Config) Config {
	c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult, c.SuspicionMaxTimeoutMult = time.Second, 500*time.Millisecond, 4, 6
	return c
}

// benchClusters keeps each benchmark's cluster from its first run (b.N = 1)
// to the next, as forming 1,000 members takes minutes. They are not closed:
// the benchmark binary exits after the runs.
var benchClusters = map[string]*benchCluster{}

type benchCluster struct {
	ms   []*Member
	want atomic.Value // the value being waited for
	seen atomic.Int64
	done chan struct{}
}

func benchConvergence(b *testing.B, n int, tune func(Config) Config) {
	c := benchClusters[b.Name()]
	if c == nil {
		c = newBenchCluster(b, n, tune)
		benchClusters[b.Name()] = c
	}
	ms := c.ms
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		v := fmt.Sprintf("v%d-%d", b.N, i)
		c.want.Store(v)
		c.seen.Store(0)
		m := ms[rand.IntN(n)]
		t0 := time.Now()
		if err := m.Put("bench", "endpoints", "task", []byte(v)); err != nil {
			b.Fatal(err)
		}
		select {
		case <-c.done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("iteration %d: %d of %d members saw the change after 2 minutes", i, c.seen.Load(), n)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	var down uint64
	for _, m := range ms {
		down += m.Stats().NodesDown
	}
	b.ReportMetric(float64(down), "false-deaths")
}

func newBenchCluster(b *testing.B, n int, tune func(Config) Config) *benchCluster {
	ca := newTestCA(b, "root")
	start := time.Now()
	ms := formCluster(b, n, func(i int) *Member {
		m, err := New(tune(benchConfig(b, ca, fmt.Sprintf("node-%04d", i))))
		if err != nil {
			b.Fatal(err)
		}
		return m
	})
	b.Logf("%d members formed in %v", n, time.Since(start))
	c := &benchCluster{ms: ms, done: make(chan struct{}, 1)}
	c.want.Store("")
	for _, m := range ms {
		m.Watch("bench", "endpoints", func(ev Event) {
			if ev.Kind != EventDelete && string(ev.Entry.Value) == c.want.Load().(string) {
				if c.seen.Add(1) == int64(n) {
					c.done <- struct{}{}
				}
			}
		})
	}

	// Every member publishes once first, so that its certificate is known
	// everywhere before the timing starts (a new node's first entry may
	// wait for its certificate to arrive: a once-per-node cost).
	for i, m := range ms {
		if err := m.Put("bench", "endpoints", "warm", []byte(strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
	waitEntryCount(b, ms, n, 5*time.Minute)
	b.Logf("warm-up entries everywhere after %v", time.Since(start))
	return c
}

func waitEntryCount(b *testing.B, ms []*Member, want int, timeout time.Duration) {
	testutil.EventuallyWhy(b, timeout, "every member to hold every warm-up entry", func() (bool, string) {
		for _, m := range ms {
			if got := len(m.Entries("bench", "endpoints")); got < want {
				return false, fmt.Sprintf("%s holds %d of %d", m.NodeID(), got, want)
			}
		}
		return true, ""
	})
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	at := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(at(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(at(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkNodeDeath measures the time from a member stopping without a
// word (Close, no Leave) until its entry is gone from every other member's
// table, for failure-detection profiles side by side (-count interleaves
// them). Each iteration kills one member and starts a new one in its place.
// false-deaths counts the EventNodeDown of members that were alive, summed
// over the watchers of every member.
//
//	go test -run '^$' -bench 'NodeDeath/members=10/' -benchtime 10x -count 3 ./mesh/gossip/
func BenchmarkNodeDeath(b *testing.B) {
	profiles := []struct {
		name string
		tune func(Config) Config
	}{
		{"default", func(c Config) Config { return c }},
		// memberlist's LAN profile, this package's default before, and
		// the faster profile measured with it.
		{"lan", lanDetection},
		{"probe=500ms,suspicion=2", func(c Config) Config {
			c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = 500*time.Millisecond, 250*time.Millisecond, 2
			return c
		}},
		// Faster still, with fewer confirmations (see Config): one
		// (suspicion ×3) or none (×2) before the shortest suspicion.
		{"probe=200ms,suspicion=3", func(c Config) Config {
			c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult, c.SuspicionMaxTimeoutMult = 200*time.Millisecond, 100*time.Millisecond, 3, 4
			return c
		}},
		{"probe=300ms,suspicion=2", func(c Config) Config {
			c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = 300*time.Millisecond, 150*time.Millisecond, 2
			return c
		}},
	}
	for _, n := range []int{10, 30} {
		for _, p := range profiles {
			b.Run(fmt.Sprintf("members=%d/%s", n, p.name), func(b *testing.B) { benchNodeDeath(b, n, p.tune) })
		}
	}
}

func benchNodeDeath(b *testing.B, n int, tune func(Config) Config) {
	ca := newTestCA(b, "root")
	next := 0
	cfgFor := func(int) Config {
		next++
		return tune(benchConfig(b, ca, fmt.Sprintf("node-%04d", next)))
	}
	var (
		mu     sync.Mutex
		killed = map[string]bool{}
		falseD int
	)
	watch := func(m *Member) {
		m.Watch("", "", func(ev Event) {
			if ev.Kind != EventNodeDown {
				return
			}
			mu.Lock()
			if !killed[ev.Entry.Owner] {
				falseD++
			}
			mu.Unlock()
		})
	}
	ms := startCluster(b, n, cfgFor)
	for _, m := range ms {
		watch(m)
		if err := m.Put("bench", "endpoints", "task", []byte(m.NodeID())); err != nil {
			b.Fatal(err)
		}
	}
	waitEntryCount(b, ms, n, time.Minute)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		i := 1 + rand.IntN(n-1)
		victim := ms[i]
		mu.Lock()
		killed[victim.NodeID()] = true
		mu.Unlock()
		t0 := time.Now()
		if err := victim.Close(); err != nil {
			b.Fatal(err)
		}
		rest := append(append([]*Member(nil), ms[:i]...), ms[i+1:]...)
		testutil.Eventually(b, time.Minute, "the dead member's entry gone everywhere", func() bool {
			for _, m := range rest {
				if _, ok := m.Get("bench", "endpoints", victim.NodeID(), "task"); ok {
					return false
				}
			}
			return true
		})
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		fresh := startMember(b, cfgFor(0))
		watch(fresh)
		if _, err := fresh.Join([]string{ms[0].Addr()}); err != nil {
			b.Fatal(err)
		}
		if err := fresh.Put("bench", "endpoints", "task", []byte(fresh.NodeID())); err != nil {
			b.Fatal(err)
		}
		ms = append(rest, fresh)
		waitMembers(b, ms, time.Minute)
		waitEntryCount(b, ms, n, time.Minute)
		b.StartTimer()
	}
	b.StopTimer()
	reportPercentiles(b, lat)
	mu.Lock()
	b.ReportMetric(float64(falseD), "false-deaths")
	mu.Unlock()
}
