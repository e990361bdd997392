package balancer

import (
	"slices"
	"testing"
)

// pool is a backend list as choose sees it.
type pool struct {
	healthy, local []bool
	active         []int64
}

func (p pool) choose(sched Scheduler, policy TrafficPolicy, next uint64) int {
	return choose(len(p.healthy), sched, policy, next,
		func(i int) bool { return p.healthy[i] },
		func(i int) bool { return p.local[i] },
		func(i int) int64 { return p.active[i] })
}

// picks runs choose for next = 0..n-1.
func (p pool) picks(sched Scheduler, policy TrafficPolicy, n int) []int {
	var out []int
	for next := range n {
		out = append(out, p.choose(sched, policy, uint64(next)))
	}
	return out
}

func TestChoose(t *testing.T) {
	T, F := true, false
	for _, tc := range []struct {
		name   string
		pool   pool
		sched  Scheduler
		policy TrafficPolicy
		want   []int
	}{
		{"round robin takes eligible backends in turn",
			pool{[]bool{T, F, T, T}, []bool{F, F, F, F}, []int64{0, 0, 0, 0}},
			RoundRobin, TrafficCluster, []int{0, 2, 3, 0, 2, 3}},
		{"round robin with none eligible",
			pool{[]bool{F, F}, []bool{T, T}, []int64{0, 0}},
			RoundRobin, TrafficLocal, []int{-1, -1}},
		{"least connections takes the least loaded",
			pool{[]bool{T, T, T}, []bool{F, F, F}, []int64{3, 1, 2}},
			LeastConnections, TrafficCluster, []int{1, 1, 1}},
		{"least connections rotates among ties",
			pool{[]bool{T, T, F, T}, []bool{F, F, F, F}, []int64{0, 0, 0, 0}},
			LeastConnections, TrafficCluster, []int{0, 1, 3, 3}},
		{"least connections skips unhealthy even when idle",
			pool{[]bool{F, T}, []bool{F, F}, []int64{0, 9}},
			LeastConnections, TrafficCluster, []int{1, 1}},
		{"local prefers local backends",
			pool{[]bool{T, T, T, T}, []bool{F, T, F, T}, []int64{0, 0, 0, 0}},
			RoundRobin, TrafficLocal, []int{1, 3, 1, 3}},
		{"local prefers a local backend even when busier",
			pool{[]bool{T, T}, []bool{F, T}, []int64{0, 5}},
			LeastConnections, TrafficLocal, []int{1, 1}},
		{"local falls back to any healthy backend",
			pool{[]bool{T, F, T}, []bool{F, T, F}, []int64{0, 0, 0}},
			RoundRobin, TrafficLocal, []int{0, 2, 0}},
		{"cluster ignores locality",
			pool{[]bool{T, T}, []bool{F, T}, []int64{0, 0}},
			RoundRobin, TrafficCluster, []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.pool.picks(tc.sched, tc.policy, len(tc.want)); !slices.Equal(got, tc.want) {
				t.Fatalf("picks %v, want %v", got, tc.want)
			}
		})
	}
	if got := (pool{}).choose(RoundRobin, TrafficCluster, 7); got != -1 {
		t.Fatalf("no backends: picked %d, want -1", got)
	}
}
