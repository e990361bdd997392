package store

import (
	"encoding/binary"
	"strings"
	"sync"

	"github.com/tidwall/btree"

	"github.com/apiary-io/apiary/swarm/api"
)

// The store's indexes are B-trees of github.com/tidwall/btree (BTreeG),
// copy-on-write: Copy is O(1), after which the copy and the tree copied
// each copy a node the first time they change it and then change their
// own copy in place. A state of the tables is therefore immutable as long
// as nobody writes through its trees, a snapshot is a few pointers, and a
// writer (a transaction) copies each node it changes once, however many
// changes it makes. What is ours: the items and their order below, and in
// db.go the layout of tables and indexes, the writers' path hints and
// appends, and the parallel index updates.

// treeDegree makes nodes of 15 to 31 entries. A transaction copies a node
// per level the first time it changes a key under it, so small nodes keep
// small transactions cheap; degrees 8 to 64 were measured, and 16 was as
// fast as any in the end-to-end scheduler benchmark and the fastest for
// one-change transactions.
const treeDegree = 16

// tree is a secondary index: entries in compareEntries order. idTree is a
// primary index: idEntries in ID order.
type (
	tree   = btree.BTreeG[entry]
	idTree = btree.BTreeG[idEntry]
)

// newTree returns an empty index. The store locks for itself (a state's
// trees are only read, a writer's only by it), so the trees do not.
func newTree[T any](less func(a, b T) bool) *btree.BTreeG[T] {
	return btree.NewBTreeGOptions(less, btree.Options{Degree: treeDegree, NoLocks: true})
}

// copyMu serializes Copy, which writes to the tree copied as well (it
// gives it a new owner ID, so that it too copies the nodes it shares):
// two writers may start from one state, or from two states that share
// the trees of the tables neither changed, at once.
var copyMu sync.Mutex

// copyTree returns a copy of t for one writer.
func copyTree[T any](t *btree.BTreeG[T]) *btree.BTreeG[T] {
	copyMu.Lock()
	defer copyMu.Unlock()
	return t.Copy()
}

// entry is one item of a secondary index, ordered by (s, n, id): the index
// key in s and n and the object's ID in id, so that keys repeat across
// objects but entries never do. An entry does not hold the object, which
// a read by index takes from the primary index: an entry then changes
// only when its key does, so a write copies the leaves of the indexes
// whose keys it changed, not a leaf of every index the object is in (a
// task is in nine, and its status updates change one key).
//
// sp and ip hold the first 8 and 16 bytes of s and id (zero-padded, big
// endian), so that most comparisons never read the strings' bytes: in a
// large tree those are a cache miss each, which made a search several
// times slower. Make entries with mkEntry.
type entry struct {
	sp uint64
	ip [2]uint64
	n  uint64
	s  string
	id string
}

func mkEntry(s string, n uint64, id string) entry {
	return entry{sp: prefix(s, 0), ip: [2]uint64{prefix(id, 0), prefix(id, 8)}, n: n, s: s, id: id}
}

// idEntry is one item of a primary index: the ID and the object, 48
// bytes against an entry's 64. The trees pass items by value, to every
// comparison too, so the index every Get and every write searches is
// faster with its own, smaller items. Make them with mkIDEntry.
type idEntry struct {
	ip  [2]uint64
	id  string
	obj api.Object
}

func mkIDEntry(id string, obj api.Object) idEntry {
	return idEntry{ip: [2]uint64{prefix(id, 0), prefix(id, 8)}, id: id, obj: obj}
}

// lessIDs is the primary indexes' order: the IDs'.
func lessIDs(a, b idEntry) bool {
	if a.ip != b.ip {
		if a.ip[0] != b.ip[0] {
			return a.ip[0] < b.ip[0]
		}
		return a.ip[1] < b.ip[1]
	}
	if len(a.id) <= 16 && len(a.id) == len(b.id) {
		return false // equal
	}
	return a.id < b.id
}

// prefix returns bytes [off, off+8) of s as a big-endian number, zero
// beyond the end of s. Numbers compare as the strings do, except that two
// equal numbers say nothing about the strings.
func prefix(s string, off int) uint64 {
	if off >= len(s) {
		return 0
	}
	s = s[off:]
	if len(s) >= 8 {
		return binary.BigEndian.Uint64([]byte(s[:8]))
	}
	var b [8]byte
	copy(b[:], s)
	return binary.BigEndian.Uint64(b[:])
}

func cmp64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}

func compareEntries(a, b *entry) int {
	if a.sp != b.sp {
		return cmp64(a.sp, b.sp)
	}
	if len(a.s) > 8 || len(b.s) > 8 || len(a.s) != len(b.s) {
		// The first 8 bytes are the same: the rest decides.
		if c := strings.Compare(a.s, b.s); c != 0 {
			return c
		}
	}
	if a.n != b.n {
		return cmp64(a.n, b.n)
	}
	if a.ip != b.ip {
		if a.ip[0] != b.ip[0] {
			return cmp64(a.ip[0], b.ip[0])
		}
		return cmp64(a.ip[1], b.ip[1])
	}
	if len(a.id) <= 16 && len(a.id) == len(b.id) {
		return 0
	}
	return strings.Compare(a.id, b.id)
}

// lessEntries is the secondary indexes' order. Most comparisons end on
// the first 8 bytes of the key, here without a further call.
func lessEntries(a, b entry) bool {
	if a.sp != b.sp {
		return a.sp < b.sp
	}
	return compareEntries(&a, &b) < 0
}
