package scheduler

import (
	"fmt"

	"github.com/apiary-io/apiary/swarm/api"
)

// cycle is the working state of one Schedule call.
type cycle struct {
	s   *Scheduler
	set *NodeSet

	// rejected collects the nodes refused for the current group.
	rejected []rejection
	// entries is scratch for the current group's feasible nodes.
	entries []nodeEntry
	heapBuf []*nodeEntry
}

type rejection struct {
	ni     *NodeInfo
	plugin string
	st     *Status
}

func newCycle(s *Scheduler, set *NodeSet) *cycle {
	set.sort()
	return &cycle{s: s, set: set}
}

func (c *cycle) preFilter(ti *TaskInfo) *Status {
	for _, f := range c.s.cfg.Filters {
		if p, ok := f.(PreFilterPlugin); ok {
			if st := p.PreFilter(ti); st != nil {
				return st
			}
		}
	}
	return nil
}

// filter runs the filters on one node; it returns the refusing plugin's
// name and status, or nil.
func (c *cycle) filter(ti *TaskInfo, ni *NodeInfo) (string, *Status) {
	for _, f := range c.s.cfg.Filters {
		if st := f.Filter(ti, ni); st != nil {
			return f.Name(), st
		}
	}
	return "", nil
}

func (c *cycle) score(ti *TaskInfo, ni *NodeInfo) int64 {
	var s int64
	for _, w := range c.s.cfg.Scores {
		if w.Weight != 0 {
			s += w.Weight * w.Plugin.Score(ti, ni)
		}
	}
	return s
}

// reserve runs the reserve plugins; on a refusal it unreserves those that
// accepted and returns the refusing plugin's name and status.
func (c *cycle) reserve(ti *TaskInfo, ni *NodeInfo, t *api.Task) (string, *Status) {
	rs := c.s.cfg.Reserves
	for i, r := range rs {
		if st := r.Reserve(ti, ni, t); st != nil {
			for j := i - 1; j >= 0; j-- {
				rs[j].Unreserve(ti, ni, t)
			}
			return r.Name(), st
		}
	}
	return "", nil
}

// nodeEntry is a feasible node of the current group, in its leaf's heap.
type nodeEntry struct {
	ni    *NodeInfo
	score int64
	idx   int
	leaf  *branch
}

// entryLess orders a leaf's nodes: highest score first, then lowest ID.
func entryLess(a, b *nodeEntry) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.ni.rank < b.ni.rank
}

// branch is a node of the spread-preference tree: the nodes sharing the
// values of the first k spread labels. A leaf holds a heap of nodes; an
// inner branch a heap of children ordered by fewest tasks of the service,
// then by label value (nodes missing the label last).
type branch struct {
	value   string
	missing bool
	count   int // tasks of the service on every node of the branch
	parent  *branch
	idx     int // position in the parent's heap

	children []*branch
	byValue  map[string]*branch // while building
	nodes    []*nodeEntry
}

func branchLess(a, b *branch) bool {
	if a.count != b.count {
		return a.count < b.count
	}
	if a.missing != b.missing {
		return !a.missing
	}
	return a.value < b.value
}

func (b *branch) isLeaf() bool { return b.byValue == nil && b.children == nil }

func (b *branch) child(value string, missing bool) *branch {
	k := value
	if missing {
		k = "\x00missing"
	}
	if ch := b.byValue[k]; ch != nil {
		return ch
	}
	ch := &branch{value: value, missing: missing, parent: b}
	if b.byValue == nil {
		b.byValue = map[string]*branch{}
	}
	b.byValue[k] = ch
	b.children = append(b.children, ch)
	return ch
}

func (b *branch) lookup(value string, missing bool) *branch {
	k := value
	if missing {
		k = "\x00missing"
	}
	return b.byValue[k]
}

// placeGroup places the tasks pending[idx...] of one group.
func (c *cycle) placeGroup(ti *TaskInfo, pending []*api.Task, idx []int, out []Decision) {
	c.rejected = c.rejected[:0]
	fail := func(reason string, e *Explanation) {
		for _, i := range idx {
			if out[i].NodeID == "" {
				out[i] = Decision{TaskID: pending[i].ID, Task: pending[i], Reason: reason, Explanation: e}
			}
		}
	}
	if st := c.preFilter(ti); st != nil {
		fail(st.Reason, &Explanation{Nodes: c.set.Len(), Invalid: st.Reason})
		return
	}
	prefs := make([]string, len(ti.Preferences))
	for i, p := range ti.Preferences {
		k, err := parseSpread(p)
		if err != nil {
			fail(err.Error(), &Explanation{Nodes: c.set.Len(), Invalid: err.Error()})
			return
		}
		prefs[i] = k
	}

	// One pass over the nodes: filter and score.
	if cap(c.entries) < len(c.set.list) {
		c.entries = make([]nodeEntry, 0, len(c.set.list))
	}
	entries := c.entries[:0]
	var withTasks []*NodeInfo // nodes with tasks of the service, for branch counts
	candidates := c.set.list
	if pin := ti.Task.NodeID; pin != "" {
		// A task born with a node (a global service's) may only go there.
		ni := c.set.Node(pin)
		if ni == nil {
			reason := fmt.Sprintf("no suitable node (node %s is not in the cluster)", pin)
			fail(reason, &Explanation{Invalid: reason})
			return
		}
		candidates = []*NodeInfo{ni}
	}
	for _, ni := range candidates {
		if len(prefs) > 0 && ti.ServiceID != "" && ni.ServiceTasks(ti.ServiceID) > 0 {
			withTasks = append(withTasks, ni)
		}
		if name, st := c.filter(ti, ni); st != nil {
			c.rejected = append(c.rejected, rejection{ni: ni, plugin: name, st: st})
			continue
		}
		entries = append(entries, nodeEntry{ni: ni, score: c.score(ti, ni)})
	}
	c.entries = entries

	// Build the preference tree (a single leaf without preferences).
	root := &branch{}
	if len(prefs) == 0 {
		root.nodes = c.heapSlice(len(entries))
		for i := range entries {
			e := &entries[i]
			e.leaf = root
			e.idx = len(root.nodes)
			root.nodes = append(root.nodes, e)
		}
	} else {
		for i := range entries {
			e := &entries[i]
			b := root
			for _, k := range prefs {
				v, ok := NodeAttribute(e.ni.Node, k)
				b = b.child(v, !ok)
			}
			e.leaf = b
			e.idx = len(b.nodes)
			b.nodes = append(b.nodes, e)
		}
		for _, ni := range withTasks {
			n := ni.ServiceTasks(ti.ServiceID)
			b := root
			for _, k := range prefs {
				v, ok := NodeAttribute(ni.Node, k)
				if b = b.lookup(v, !ok); b == nil {
					break
				}
				b.count += n
			}
		}
		initBranches(root)
	}
	heapInit(root.nodes)

	placed := 0
	for _, i := range idx {
		task := pending[i]
		for {
			if root.empty() {
				break
			}
			leaf := root
			for !leaf.isLeaf() {
				leaf = leaf.children[0]
			}
			e := leaf.nodes[0]
			ni := e.ni
			if name, st := c.reserve(ti, ni, task); st != nil {
				c.rejected = append(c.rejected, rejection{ni: ni, plugin: name, st: st})
				removeEntry(e)
				continue
			}
			c.set.place(task.ID, ni.Node.ID, ti.u)
			out[i] = Decision{TaskID: task.ID, Task: task, NodeID: ni.Node.ID}
			placed++
			for b := leaf; b.parent != nil; b = b.parent {
				b.count++
				branchFix(b.parent.children, b.idx)
			}
			if name, st := c.filter(ti, ni); st != nil {
				c.rejected = append(c.rejected, rejection{ni: ni, plugin: name, st: st})
				removeEntry(e)
			} else {
				e.score = c.score(ti, ni)
				entryFix(leaf.nodes, e.idx)
			}
			break
		}
		if out[i].NodeID == "" {
			break
		}
	}
	if placed < len(idx) || c.s.cfg.ExplainAll {
		e := &Explanation{Nodes: len(candidates)}
		c.explain(e)
		reason := e.String()
		if placed == len(idx) {
			reason = ""
		}
		for _, i := range idx {
			if out[i].NodeID == "" {
				out[i] = Decision{TaskID: pending[i].ID, Task: pending[i], Reason: reason, Explanation: e}
			} else {
				out[i].Explanation = e
			}
		}
	}
}

func (c *cycle) heapSlice(n int) []*nodeEntry {
	if cap(c.heapBuf) < n {
		c.heapBuf = make([]*nodeEntry, 0, n)
	}
	return c.heapBuf[:0]
}

func (b *branch) empty() bool {
	if b.isLeaf() {
		return len(b.nodes) == 0
	}
	return len(b.children) == 0
}

// initBranches turns the children lists into heaps, bottom up, and drops
// the building maps.
func initBranches(b *branch) {
	if b.byValue == nil {
		heapInit(b.nodes)
		return
	}
	b.byValue = nil
	for i, ch := range b.children {
		ch.idx = i
		initBranches(ch)
	}
	branchInit(b.children)
}

// removeEntry takes a node out of its leaf, and prunes branches left empty.
func removeEntry(e *nodeEntry) {
	leaf := e.leaf
	leaf.nodes = entryRemove(leaf.nodes, e.idx)
	b := leaf
	for b.parent != nil && b.empty() {
		p := b.parent
		p.children = branchRemove(p.children, b.idx)
		b = p
	}
}

// The heaps are written out for the two element types rather than through
// container/heap: the interface calls cost a third of the placement time.

func heapInit(h []*nodeEntry) {
	for i, e := range h {
		e.idx = i
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		entryDown(h, i)
	}
}

func entryFix(h []*nodeEntry, i int) {
	if !entryDown(h, i) {
		entryUp(h, i)
	}
}

func entryRemove(h []*nodeEntry, i int) []*nodeEntry {
	n := len(h) - 1
	if n != i {
		h[i], h[n] = h[n], h[i]
		h[i].idx = i
		h[n].idx = n
		if !entryDown(h[:n], i) {
			entryUp(h[:n], i)
		}
	}
	h[n] = nil
	return h[:n]
}

func entryUp(h []*nodeEntry, j int) {
	for {
		i := (j - 1) / 2
		if i == j || !entryLess(h[j], h[i]) {
			break
		}
		h[i], h[j] = h[j], h[i]
		h[i].idx, h[j].idx = i, j
		j = i
	}
}

func entryDown(h []*nodeEntry, i0 int) bool {
	i, n := i0, len(h)
	for {
		j1 := 2*i + 1
		if j1 >= n || j1 < 0 {
			break
		}
		j := j1
		if j2 := j1 + 1; j2 < n && entryLess(h[j2], h[j1]) {
			j = j2
		}
		if !entryLess(h[j], h[i]) {
			break
		}
		h[i], h[j] = h[j], h[i]
		h[i].idx, h[j].idx = i, j
		i = j
	}
	return i > i0
}

func branchInit(h []*branch) {
	for i, b := range h {
		b.idx = i
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		branchDown(h, i)
	}
}

func branchFix(h []*branch, i int) {
	if i < 0 || i >= len(h) || h[i] == nil {
		return
	}
	if !branchDown(h, i) {
		branchUp(h, i)
	}
}

func branchRemove(h []*branch, i int) []*branch {
	n := len(h) - 1
	if n != i {
		h[i], h[n] = h[n], h[i]
		h[i].idx = i
		h[n].idx = n
		if !branchDown(h[:n], i) {
			branchUp(h[:n], i)
		}
	}
	h[n].idx = -1
	h[n] = nil
	return h[:n]
}

func branchUp(h []*branch, j int) {
	for {
		i := (j - 1) / 2
		if i == j || !branchLess(h[j], h[i]) {
			break
		}
		h[i], h[j] = h[j], h[i]
		h[i].idx, h[j].idx = i, j
		j = i
	}
}

func branchDown(h []*branch, i0 int) bool {
	i, n := i0, len(h)
	for {
		j1 := 2*i + 1
		if j1 >= n || j1 < 0 {
			break
		}
		j := j1
		if j2 := j1 + 1; j2 < n && branchLess(h[j2], h[j1]) {
			j = j2
		}
		if !branchLess(h[j], h[i]) {
			break
		}
		h[i], h[j] = h[j], h[i]
		h[i].idx, h[j].idx = i, j
		i = j
	}
	return i > i0
}
