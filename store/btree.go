package store

import (
	"encoding/binary"
	"slices"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// A copy-on-write B-tree: the store's tables and indexes.
//
// A tree value (root and length) is an immutable snapshot as long as nobody
// writes through it with an owner. A writer holds an owner token: a node
// stamped with the writer's token belongs to it and is changed in place;
// any other node is copied (and stamped) before it changes. A snapshot is
// therefore O(1), a write copies at most the path it changes the first time
// and nothing after that, however large the transaction, and once the
// writer is done (its token never used again) every node it made is
// immutable in turn.
//
// The algorithm is the classic one with preemptive splits on the way down
// for inserts and preemptive growth of small children for deletes, as in
// github.com/google/btree, except that the last node of a level, when
// ascending inserts fill it, splits near its end: nodes other than the root
// hold from 1 to btreeMaxItems items, usually more than btreeMinItems.

const (
	btreeMaxItems = 31
	btreeMinItems = btreeMaxItems / 2
)

// entry is one item of a tree, ordered by (s, n, id). The primary index of
// a table stores (“”, 0, ID); a secondary index stores its key in s and n
// and the object's ID in id, so that keys repeat across objects but entries
// never do. Every entry holds the stored object.
//
// sp and ip hold the first 8 and 16 bytes of s and id (zero-padded, big
// endian), so that most comparisons never read the strings' bytes: in a
// large tree those are a cache miss each, which made a search several
// times slower. Make entries with mkEntry.
type entry struct {
	sp  uint64
	ip  [2]uint64
	n   uint64
	s   string
	id  string
	obj api.Object
}

func mkEntry(s string, n uint64, id string, obj api.Object) entry {
	return entry{sp: prefix(s, 0), ip: [2]uint64{prefix(id, 0), prefix(id, 8)}, n: n, s: s, id: id, obj: obj}
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

// owner marks the nodes one writer may change in place. It has a size so
// that every new owner is a distinct pointer.
type owner struct{ _ byte }

type bnode struct {
	owner    *owner
	items    []entry
	children []*bnode // nil in a leaf; else len(items)+1
}

type btree struct {
	root   *bnode
	length int
	// setLeaf is the leaf the last set reached (setEdge: the last leaf of
	// the tree) and delLeaf the one the last delete did, for a writer's
	// next change near it: writers often go through keys in order, and a
	// change inside a leaf it owns needs no descent. Both stay in the tree
	// while the writer changes it, since a split keeps the node it splits;
	// a delete that restructures (merges) forgets them. Only the owner of
	// a leaf uses it.
	setLeaf, delLeaf *bnode
	setEdge          bool
}

func newBnode(o *owner, leaf bool) *bnode {
	n := &bnode{owner: o, items: make([]entry, 0, btreeMaxItems)}
	if !leaf {
		n.children = make([]*bnode, 0, btreeMaxItems+1)
	}
	return n
}

// writable returns n if o owns it, else a copy of n that o owns. The copy
// has room for one more item, not for btreeMaxItems: most nodes a
// transaction copies get one change, which keeps their size or adds one.
func (n *bnode) writable(o *owner) *bnode { return n.writableRoom(o, 1) }

// writableRoom is writable with room for more items in the copy.
func (n *bnode) writableRoom(o *owner, room int) *bnode {
	if n.owner == o {
		return n
	}
	size := min(len(n.items)+room, btreeMaxItems)
	c := &bnode{owner: o, items: make([]entry, len(n.items), size)}
	copy(c.items, n.items)
	if n.children != nil {
		c.children = make([]*bnode, len(n.children), size+1)
		copy(c.children, n.children)
	}
	return c
}

// splitPoint is where to split a full node before inserting e: in the
// middle, or, for a node on the tree's right edge when e goes after all of
// it (so after everything in the tree), near the end, so that ascending
// inserts (IDs made in order, the tasks of a new service) fill their nodes
// instead of leaving each half empty.
func (n *bnode) splitPoint(e *entry, rightEdge bool) int {
	if rightEdge && compareEntries(e, &n.items[len(n.items)-1]) > 0 {
		return len(n.items) - 2
	}
	return btreeMaxItems / 2
}

func (n *bnode) writableChild(i int, o *owner) *bnode {
	c := n.children[i].writable(o)
	n.children[i] = c
	return c
}

// search returns the index of the first item not below k and whether it
// equals k.
func (n *bnode) search(k *entry) (int, bool) {
	lo, hi := 0, len(n.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if compareEntries(&n.items[m], k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(n.items) && compareEntries(&n.items[lo], k) == 0
}

// get returns the entry equal to k.
func (t *btree) get(k *entry) (*entry, bool) {
	for n := t.root; n != nil; {
		i, found := n.search(k)
		if found {
			return &n.items[i], true
		}
		if n.children == nil {
			break
		}
		n = n.children[i]
	}
	return nil, false
}

// set inserts e, or replaces the entry equal to it, which it returns.
func (t *btree) set(o *owner, e entry) (old entry, replaced bool) {
	if f := t.setLeaf; f != nil && f.owner == o {
		if old, replaced, ok := f.setNear(&e, t.setEdge); ok {
			if !replaced {
				t.length++
			}
			return old, replaced
		}
	}
	if t.root == nil {
		t.root = newBnode(o, true)
	} else {
		t.root = t.root.writableRoom(o, btreeMaxItems)
	}
	if len(t.root.items) >= btreeMaxItems {
		mid, right := t.root.split(t.root.splitPoint(&e, true), o)
		left := t.root
		t.root = newBnode(o, false)
		t.root.items = append(t.root.items, mid)
		t.root.children = append(t.root.children, left, right)
	}
	old, replaced, t.setLeaf, t.setEdge = t.root.insert(o, e)
	if !replaced {
		t.length++
	}
	return old, replaced
}

// setNear sets e in the leaf n, which o owns, if e belongs there: between
// its first and last items, or after them in the last leaf of the tree
// (edge). ok is false when it does not, or when n is full.
func (n *bnode) setNear(e *entry, edge bool) (old entry, replaced, ok bool) {
	last := len(n.items) - 1
	if last < 0 || compareEntries(e, &n.items[0]) < 0 {
		return entry{}, false, false
	}
	if c := compareEntries(e, &n.items[last]); c > 0 && !edge {
		return entry{}, false, false
	}
	i, found := n.search(e)
	if found {
		old = n.items[i]
		n.items[i] = *e
		return old, true, true
	}
	if len(n.items) >= btreeMaxItems {
		return entry{}, false, false
	}
	n.items = insertAt(n.items, i, *e)
	return entry{}, false, true
}

// insertAt inserts v at s[i]. A full slice grows to the most a node holds
// (btreeMaxItems items, one more child) at once, not by doubling: nodes
// are copied with little room, and doubling would overshoot.
func insertAt[T any](s []T, i int, v T) []T {
	if len(s) == cap(s) {
		grown := make([]T, len(s)+1, max(btreeMaxItems+1, len(s)+1))
		copy(grown, s[:i])
		grown[i] = v
		copy(grown[i+1:], s[i:])
		return grown
	}
	s = s[:len(s)+1]
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

// split moves the items after i (and their children) to a new node and
// returns item i and that node. n must be writable.
func (n *bnode) split(i int, o *owner) (entry, *bnode) {
	mid := n.items[i]
	next := newBnode(o, n.children == nil)
	next.items = append(next.items, n.items[i+1:]...)
	clear(n.items[i:])
	n.items = n.items[:i]
	if n.children != nil {
		next.children = append(next.children, n.children[i+1:]...)
		clear(n.children[i+1:])
		n.children = n.children[:i+1]
	}
	return mid, next
}

// insert puts e into the subtree of n, a writable node that is not full,
// and returns the leaf it reached (nil when it replaced an item of an inner
// node) and whether that is the last leaf of the tree.
func (n *bnode) insert(o *owner, e entry) (old entry, replaced bool, leaf *bnode, edge bool) {
	rightEdge := true // n is the last node of its level
	for {
		i, found := n.search(&e)
		if found {
			old := n.items[i]
			n.items[i] = e
			if n.children != nil {
				return old, true, nil, false
			}
			return old, true, n, rightEdge
		}
		if n.children == nil {
			n.items = insertAt(n.items, i, e)
			return entry{}, false, n, rightEdge
		}
		if child := n.children[i]; len(child.items) >= btreeMaxItems {
			edge := rightEdge && i == len(n.items)
			mid, right := n.writableChild(i, o).split(child.splitPoint(&e, edge), o)
			n.items = insertAt(n.items, i, mid)
			n.children = insertAt(n.children, i+1, right)
			switch c := compareEntries(&e, &n.items[i]); {
			case c == 0:
				old := n.items[i]
				n.items[i] = e
				return old, true, nil, false
			case c > 0:
				i++
			}
		}
		rightEdge = rightEdge && i == len(n.items)
		room := 1
		if rightEdge {
			room = btreeMaxItems // where ascending inserts go on
		}
		c := n.children[i].writableRoom(o, room)
		n.children[i] = c
		n = c
	}
}

// delete removes the entry equal to k and returns it.
func (t *btree) delete(o *owner, k *entry) (entry, bool) {
	if f := t.delLeaf; f != nil && f.owner == o && len(f.items) > btreeMinItems &&
		compareEntries(k, &f.items[0]) >= 0 && compareEntries(k, &f.items[len(f.items)-1]) <= 0 {
		// Inside a leaf that keeps enough items: nothing to rebalance.
		if i, found := f.search(k); found {
			old := f.items[i]
			f.items = slices.Delete(f.items, i, i+1)
			t.length--
			return old, true
		}
		return entry{}, false
	}
	if t.root == nil || len(t.root.items) == 0 {
		return entry{}, false
	}
	t.setLeaf, t.delLeaf = nil, nil // a merge may take any node out
	t.root = t.root.writable(o)
	old, found, leaf := t.root.remove(o, k)
	if len(t.root.items) == 0 {
		if t.root.children != nil {
			t.root = t.root.children[0]
		} else {
			t.root = nil
			leaf = nil
		}
	}
	t.delLeaf = leaf
	if found {
		t.length--
	}
	return old, found
}

// remove deletes k (or, with k nil, the largest item) from the subtree of
// n, a writable node that has more than the minimum of items unless it is
// the root, and returns the leaf it deleted k from (nil for an inner node).
func (n *bnode) remove(o *owner, k *entry) (entry, bool, *bnode) {
	for {
		var i int
		var found bool
		if k == nil {
			i = len(n.items)
			if n.children == nil {
				last := n.items[i-1]
				n.items[i-1] = entry{}
				n.items = n.items[:i-1]
				return last, true, nil
			}
		} else {
			i, found = n.search(k)
			if n.children == nil {
				if !found {
					return entry{}, false, n
				}
				old := n.items[i]
				n.items = slices.Delete(n.items, i, i+1)
				return old, true, n
			}
		}
		if len(n.children[i].items) <= btreeMinItems {
			n.grow(o, i)
			continue // the items moved: search this node again
		}
		child := n.writableChild(i, o)
		if found {
			// Replace the item by its predecessor, the largest item of
			// the child before it.
			old := n.items[i]
			n.items[i], _, _ = child.remove(o, nil)
			return old, true, nil
		}
		n = child
	}
}

// grow gives child i of n more than the minimum of items, taking one from
// a sibling through n or merging it with a sibling.
func (n *bnode) grow(o *owner, i int) {
	switch {
	case i > 0 && len(n.children[i-1].items) > btreeMinItems:
		child := n.writableChild(i, o)
		left := n.writableChild(i-1, o)
		child.items = insertAt(child.items, 0, n.items[i-1])
		last := len(left.items) - 1
		n.items[i-1] = left.items[last]
		left.items[last] = entry{}
		left.items = left.items[:last]
		if left.children != nil {
			lc := len(left.children) - 1
			child.children = insertAt(child.children, 0, left.children[lc])
			left.children[lc] = nil
			left.children = left.children[:lc]
		}
	case i < len(n.items) && len(n.children[i+1].items) > btreeMinItems:
		child := n.writableChild(i, o)
		right := n.writableChild(i+1, o)
		child.items = append(child.items, n.items[i])
		n.items[i] = right.items[0]
		right.items = slices.Delete(right.items, 0, 1)
		if right.children != nil {
			child.children = append(child.children, right.children[0])
			right.children = slices.Delete(right.children, 0, 1)
		}
	default:
		if i >= len(n.items) {
			i--
		}
		child := n.writableChild(i, o)
		right := n.children[i+1] // read only
		child.items = append(child.items, n.items[i])
		child.items = append(child.items, right.items...)
		if child.children != nil {
			child.children = append(child.children, right.children...)
		}
		n.items = slices.Delete(n.items, i, i+1)
		n.children = slices.Delete(n.children, i+1, i+2)
	}
}

// ascend calls fn on the entries from the first not below from (every
// entry with from nil), in order, until fn returns false.
func (t *btree) ascend(from *entry, fn func(*entry) bool) {
	if t.root != nil {
		t.root.ascend(from, fn)
	}
}

func (n *bnode) ascend(from *entry, fn func(*entry) bool) bool {
	i := 0
	if from != nil {
		i, _ = n.search(from)
	}
	for ; i < len(n.items); i++ {
		if n.children != nil && !n.children[i].ascend(from, fn) {
			return false
		}
		from = nil // everything from here on is above it
		if !fn(&n.items[i]) {
			return false
		}
	}
	if n.children != nil {
		return n.children[len(n.items)].ascend(from, fn)
	}
	return true
}
