package balancer

// choose returns the backend a new connection goes to, or -1 when none is
// eligible. eligible says which backends may take it (healthy, listed, not
// yet tried); under TrafficLocal the eligible local ones are preferred and
// the others used only when no local one is eligible. next is the service's
// rotation counter: round robin takes the next-th eligible backend, least
// connections breaks ties by starting its scan at a rotating position, so
// equal backends share the load instead of the first taking it all.
//
// It is a pure function of its inputs (active reads the open connections
// of a backend) so the policies are tested without sockets; the caller
// holds the service's lock. It is linear in len(bs), bounded by
// MaxBackends.
func choose(n int, sched Scheduler, policy TrafficPolicy, next uint64,
	eligible func(i int) bool, local func(i int) bool, active func(i int) int64) int {
	ok := eligible
	if policy == TrafficLocal {
		anyLocal := false
		for i := range n {
			if eligible(i) && local(i) {
				anyLocal = true
				break
			}
		}
		if anyLocal {
			ok = func(i int) bool { return eligible(i) && local(i) }
		}
	}
	if sched == LeastConnections {
		best, bestActive := -1, int64(0)
		for k := range n {
			i := int((next + uint64(k)) % uint64(n))
			if !ok(i) {
				continue
			}
			if a := active(i); best < 0 || a < bestActive {
				best, bestActive = i, a
			}
		}
		return best
	}
	count := 0
	for i := range n {
		if ok(i) {
			count++
		}
	}
	if count == 0 {
		return -1
	}
	want := int(next % uint64(count))
	for i := range n {
		if ok(i) {
			if want == 0 {
				return i
			}
			want--
		}
	}
	return -1 // unreachable: want < count
}
