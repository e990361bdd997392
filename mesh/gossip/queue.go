package gossip

import "github.com/hashicorp/memberlist"

// newQueue returns memberlist's transmit queue, never empty.
//
// Why: memberlist v0.7.0's TransmitLimitedQueue orders its items by
// (transmits, length, id) and restarts its id counter whenever it empties,
// including for a moment inside GetBroadcasts, which takes each item out
// and puts the ones still to send back afterwards. An item put back with
// its old id can then equal a newer item of the same length and transmit
// count, and the tree keeps only one of them: an entry update is silently
// dropped, and every other node waits for push/pull (30 s or more) to
// learn it (hashicorp/memberlist#263, open). A permanent item too large to
// ever be sent keeps the queue from emptying, so ids only grow.
func newQueue(numNodes func() int, retransmitMult int) *memberlist.TransmitLimitedQueue {
	q := &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: retransmitMult}
	q.QueueBroadcast(keeper{})
	return q
}

// keeperSize is larger than any message memberlist gossips (a UDP packet),
// so GetBroadcasts never picks the keeper.
const keeperSize = 1 << 16

var keeperMsg = make([]byte, keeperSize)

// keeper is the queue's permanent item. Named, so nothing invalidates it.
type keeper struct{}

func (keeper) Name() string                          { return "\x00keeper" }
func (keeper) Invalidates(memberlist.Broadcast) bool { return false }
func (keeper) Message() []byte                       { return keeperMsg }
func (keeper) Finished()                             {}

var _ memberlist.NamedBroadcast = keeper{}
