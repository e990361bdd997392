package gossip

import (
	"testing"

	"github.com/hashicorp/memberlist"
)

// The sequence that loses a broadcast in memberlist's own queue: a is sent
// once (the queue empties for a moment and restarts its ids), then b is
// queued with a's id and length and sent once, which puts it back equal
// to a. Each must still be sent its full count of times.
func TestQueueKeepsEveryBroadcast(t *testing.T) {
	const nodes, mult = 9, 2 // transmit limit 2 × ⌈log10(10)⌉ = 2
	for _, tc := range []struct {
		name string
		q    *memberlist.TransmitLimitedQueue
		lost bool
	}{
		{"memberlist's queue", &memberlist.TransmitLimitedQueue{NumNodes: func() int { return nodes }, RetransmitMult: mult}, true},
		{"newQueue", newQueue(func() int { return nodes }, mult), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &broadcast{name: "a", msg: []byte("aaaaaaaaaa")}
			b := &broadcast{name: "b", msg: []byte("bbbbbbbbbb")}
			sent := map[string]int{}
			// One message of 10 bytes fits each call.
			const overhead, limit = 2, 2 + 10 + 5
			get := func() {
				for _, m := range tc.q.GetBroadcasts(overhead, limit) {
					sent[string(m[:1])]++
				}
			}
			tc.q.QueueBroadcast(a)
			get()
			tc.q.QueueBroadcast(b)
			for range 10 {
				get()
			}
			lost := sent["a"] != 2 || sent["b"] != 2
			if lost != tc.lost {
				t.Errorf("sent %v, want a and b twice each (lost: %v, expected %v)", sent, lost, tc.lost)
			}
		})
	}
}
