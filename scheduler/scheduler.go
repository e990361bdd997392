package scheduler

import (
	"github.com/apiary-io/apiary/swarm/api"
)

// Config is the scheduler's pipeline: its plugins, in order, and the weights
// of its scores. Built-in and user plugins are registered the same way.
type Config struct {
	// Filters run in order for every node; the first that refuses a node is
	// the one its explanation names.
	Filters []FilterPlugin
	// Scores rank the nodes that pass; the highest weighted sum wins, ties
	// go to the lower node ID.
	Scores []WeightedScore
	// Reserves are told of each placement, and may refuse it.
	Reserves []ReservePlugin
	// ExplainAll attaches an Explanation (with every rejected node) to
	// every decision, placed or not. By default only unplaced tasks get one.
	ExplainAll bool
}

// DefaultConfig returns the built-in pipeline: filters NodeAvailable,
// Executor, Platform, Constraints, MaxReplicas, HostPorts and Resources;
// scores ServiceSpread and Binpack (weight WeightPrimary) then NodeLoad
// (weight WeightSecondary). Spread preferences are applied by the scheduler
// itself, above the scores.
func DefaultConfig() Config {
	return Config{
		Filters: []FilterPlugin{
			NodeAvailable{}, Executor{}, Platform{}, Constraints{},
			MaxReplicas{}, HostPorts{}, Resources{},
		},
		Scores: []WeightedScore{
			{Plugin: ServiceSpread{}, Weight: WeightPrimary},
			{Plugin: Binpack{}, Weight: WeightPrimary},
			{Plugin: NodeLoad{}, Weight: WeightSecondary},
		},
	}
}

// Register adds a plugin at every extension point it implements: after the
// existing filters (FilterPlugin), with weight 1 among the scores
// (ScorePlugin; use RegisterScore for another weight), and after the existing
// reserve plugins (ReservePlugin). It returns c for chaining.
func (c *Config) Register(p Plugin) *Config {
	if f, ok := p.(FilterPlugin); ok {
		c.Filters = append(c.Filters, f)
	}
	if s, ok := p.(ScorePlugin); ok {
		c.Scores = append(c.Scores, WeightedScore{Plugin: s, Weight: 1})
	}
	if r, ok := p.(ReservePlugin); ok {
		c.Reserves = append(c.Reserves, r)
	}
	return c
}

// RegisterScore adds a score plugin with a weight.
func (c *Config) RegisterScore(p ScorePlugin, weight int64) *Config {
	c.Scores = append(c.Scores, WeightedScore{Plugin: p, Weight: weight})
	return c
}

// Disable removes every plugin with the given name from every extension
// point.
func (c *Config) Disable(name string) *Config {
	c.Filters = dropNamed(c.Filters, name)
	c.Reserves = dropNamed(c.Reserves, name)
	out := c.Scores[:0:0]
	for _, s := range c.Scores {
		if s.Plugin.Name() != name {
			out = append(out, s)
		}
	}
	c.Scores = out
	return c
}

func dropNamed[P Plugin](ps []P, name string) []P {
	var out []P
	for _, p := range ps {
		if p.Name() != name {
			out = append(out, p)
		}
	}
	return out
}

// Scheduler places pending tasks on nodes. It keeps no state between calls
// besides its Config, so one Scheduler may serve concurrent calls on
// different sets as long as its plugins allow it.
type Scheduler struct {
	cfg       Config
	crossNode bool
}

// New returns a scheduler with the given pipeline.
func New(cfg Config) *Scheduler {
	s := &Scheduler{cfg: cfg}
	check := func(p Plugin) {
		if c, ok := p.(CrossNodePlugin); ok && c.CrossNode() {
			s.crossNode = true
		}
	}
	for _, f := range cfg.Filters {
		check(f)
	}
	for _, w := range cfg.Scores {
		check(w.Plugin)
	}
	return s
}

// Config returns the scheduler's pipeline.
func (s *Scheduler) Config() Config { return s.cfg }

// State is the cluster as Schedule sees it.
type State struct {
	// Nodes are all the nodes of the cluster.
	Nodes []*api.Node
	// Tasks are the tasks placed on nodes that take resources there (see
	// TakesResources; others are ignored): they are accounted for, and count for
	// spreading.
	Tasks []*api.Task
}

// Decision is the scheduler's answer for one pending task.
type Decision struct {
	TaskID string
	// Task is the pending task as given.
	Task *api.Task
	// NodeID is the chosen node, or "" when the task fits nowhere.
	NodeID string
	// Reason explains an unplaced task: `no suitable node (...)`, or why the
	// task cannot be scheduled at all (an invalid constraint).
	Reason string
	// Explanation details Reason: how many nodes each plugin refused and
	// which. Tasks of a group share it. Nil for placed tasks unless
	// Config.ExplainAll.
	Explanation *Explanation
}

// Placed reports whether the task got a node.
func (d Decision) Placed() bool { return d.NodeID != "" }

// Result is the outcome of one Schedule call.
type Result struct {
	// Decisions has one entry per pending task, in the order given.
	Decisions []Decision
	// Placed and Unplaced count the decisions.
	Placed, Unplaced int
}

// Schedule places pending tasks on the nodes of st. A pending task normally
// has no node yet; one that has a NodeID (a global service's task, born
// with its node) is pinned: only that node is considered, and it still has
// to pass every filter. Schedule reads st and pending and changes neither. The outcome depends only
// on the input: tasks are grouped by service ID and spec version, groups are
// placed in the order their first task appears in pending, and every node
// choice is a total order (spread preference branch, weighted score, node
// ID). Resources reserved by earlier decisions of the same call are
// accounted for.
func (s *Scheduler) Schedule(st State, pending []*api.Task) Result {
	set := &NodeSet{
		nodes: make(map[string]*NodeInfo, len(st.Nodes)),
		list:  make([]*NodeInfo, 0, len(st.Nodes)),
	}
	set.load(st)
	return s.schedule(set, pending)
}

// ScheduleSet is Schedule on an incrementally maintained NodeSet. Its
// decisions are recorded in set (AddTask with the chosen node), so a later
// call accounts for them; a pending task that set already counts on a node
// is first removed from it and scheduled anew.
func (s *Scheduler) ScheduleSet(set *NodeSet, pending []*api.Task) Result {
	if set.track {
		for _, t := range pending {
			set.RemoveTask(t.ID)
		}
	}
	return s.schedule(set, pending)
}

// Explain runs the filters for one task on every node of st (or on its
// node only, when the task is pinned to one), as if it were the only pending
// task, and returns which plugin refuses each node. It places nothing.
func (s *Scheduler) Explain(st State, task *api.Task) *Explanation {
	set := NewNodeSetFromState(st)
	set.RemoveTask(task.ID)
	c := newCycle(s, set)
	ti := NewTaskInfo(task)
	candidates := set.list
	if task.NodeID != "" {
		candidates = nil
		if ni := set.Node(task.NodeID); ni != nil {
			candidates = []*NodeInfo{ni}
		}
	}
	e := &Explanation{Nodes: len(candidates)}
	if st := c.preFilter(ti); st != nil {
		e.Invalid = st.Reason
		return e
	}
	for _, ni := range candidates {
		if idx, st := c.filter(ti, ni); st != nil {
			c.rejected = append(c.rejected, rejection{ni: ni, plugin: idx, st: st})
		}
	}
	c.explain(e)
	return e
}

func (s *Scheduler) schedule(set *NodeSet, pending []*api.Task) Result {
	res := Result{Decisions: make([]Decision, len(pending))}
	// Group identical tasks (same service, spec version and pinned node),
	// in order of first appearance.
	type group struct {
		idx []int
	}
	var groups []*group
	if s.crossNode {
		groups = make([]*group, len(pending))
		for i := range pending {
			groups[i] = &group{idx: []int{i}}
		}
	} else {
		byKey := map[groupKey]*group{}
		for i, t := range pending {
			k := keyOf(t)
			g := byKey[k]
			if g == nil {
				g = &group{}
				byKey[k] = g
				groups = append(groups, g)
			}
			g.idx = append(g.idx, i)
		}
	}
	c := newCycle(s, set)
	for _, g := range groups {
		first := pending[g.idx[0]]
		ti := NewTaskInfo(first)
		ti.Tasks = len(g.idx)
		c.placeGroup(ti, pending, g.idx, res.Decisions)
	}
	for _, d := range res.Decisions {
		if d.NodeID != "" {
			res.Placed++
		} else {
			res.Unplaced++
		}
	}
	return res
}
