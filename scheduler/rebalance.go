package scheduler

import (
	"cmp"
	"slices"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// RebalanceLabel is the service label (apiary.scheduler.rebalance=true) by
// which a service opts in to rebalancing: when nodes join, the manager may
// call Rebalance for it and replace the suggested tasks, at most the update
// config's parallelism at a time. Rebalance itself does not read the label;
// WantsRebalance does.
const RebalanceLabel = "apiary.scheduler.rebalance"

// WantsRebalance reports whether a task's service opted in to rebalancing.
func WantsRebalance(t *api.Task) bool {
	return strings.EqualFold(t.ServiceAnnotations.Labels[RebalanceLabel], "true")
}

// Move suggests replacing a task on one node by a copy on another.
type Move struct {
	TaskID string
	From   string
	To     string
}

// Rebalance suggests at most parallelism moves of the service's tasks in
// st.Tasks that bring them closer to the spread goal: even over the values
// of each spread preference (outermost first), then even over nodes. Each
// move is where the scheduler itself would place the task if it were
// pending, with every filter applied, and it strictly improves the spread
// (one level's sum of squared counts decreases, the levels above it
// unchanged), so repeated calls converge and never oscillate. Tasks with
// the binpack strategy are not moved. It is pure: st is not changed.
func (s *Scheduler) Rebalance(st State, serviceID string, parallelism int) []Move {
	if parallelism <= 0 {
		return nil
	}
	set := NewNodeSetFromState(st)
	var tasks []*api.Task
	for _, t := range st.Tasks {
		if t.ServiceID == serviceID && TakesResources(t) && set.Node(t.NodeID) != nil {
			tasks = append(tasks, t)
		}
	}
	if len(tasks) == 0 {
		return nil
	}
	// The newest spec decides the preferences.
	newest := slices.MaxFunc(tasks, func(a, b *api.Task) int { return cmp.Compare(a.SpecVersion, b.SpecVersion) })
	ti := NewTaskInfo(newest)
	if ti.Strategy == StrategyBinpack {
		return nil
	}
	var keys []string
	for _, p := range ti.Preferences {
		k, err := parseSpread(p)
		if err != nil {
			return nil
		}
		keys = append(keys, k)
	}
	// path returns the branch of a node at each preference level, and the
	// node itself last.
	path := func(nodeID string) []string {
		n := set.Node(nodeID).Node
		out := make([]string, 0, len(keys)+1)
		for _, k := range keys {
			v, ok := NodeAttribute(n, k)
			if !ok {
				v = "\x00missing"
			}
			out = append(out, v)
		}
		return append(out, "\x00node/"+nodeID)
	}
	// counts[level][branch] is the number of the service's tasks.
	counts := make([]map[string]int, len(keys)+1)
	for i := range counts {
		counts[i] = map[string]int{}
	}
	where := map[string]string{} // task ID -> node ID
	for _, t := range tasks {
		where[t.ID] = t.NodeID
		for l, b := range prefix(path(t.NodeID)) {
			counts[l][b]++
		}
	}
	var moves []Move
	moved := map[string]bool{}
	for len(moves) < parallelism {
		// Candidates: tasks on the most loaded branches first.
		slices.SortStableFunc(tasks, func(a, b *api.Task) int {
			pa, pb := prefix(path(where[a.ID])), prefix(path(where[b.ID]))
			for l := range pa {
				if ca, cb := counts[l][pa[l]], counts[l][pb[l]]; ca != cb {
					return cb - ca
				}
			}
			if where[a.ID] != where[b.ID] {
				return cmpString(where[a.ID], where[b.ID])
			}
			return cmpString(a.ID, b.ID)
		})
		found := false
		for _, t := range tasks {
			if moved[t.ID] {
				continue
			}
			from := where[t.ID]
			set.RemoveTask(t.ID)
			p := t.Copy()
			p.NodeID = ""
			res := s.ScheduleSet(set, []*api.Task{p})
			to := res.Decisions[0].NodeID
			if to != "" && to != from && improves(counts, prefix(path(from)), prefix(path(to))) {
				for l, b := range prefix(path(from)) {
					counts[l][b]--
				}
				for l, b := range prefix(path(to)) {
					counts[l][b]++
				}
				where[t.ID] = to
				moved[t.ID] = true
				moves = append(moves, Move{TaskID: t.ID, From: from, To: to})
				found = true
				break
			}
			set.RemoveTask(t.ID)
			set.AddTask(t)
		}
		if !found {
			break
		}
	}
	return moves
}

// prefix turns a node's path into the branch keys at each level: the
// values of the levels above included, so that rack r1 of dc1 and rack r1
// of dc2 are different branches.
func prefix(p []string) []string {
	out := make([]string, len(p))
	acc := ""
	for i, v := range p {
		acc += "\x01" + v
		out[i] = acc
	}
	return out
}

// improves reports whether moving one task from branch path `from` to `to`
// lowers the sums of squared counts per level, compared level by level from
// the outermost: at a level where the branches differ the sum changes by
// 2*(count(to)-count(from))+2; the first non-zero change decides.
func improves(counts []map[string]int, from, to []string) bool {
	for l := range from {
		if from[l] == to[l] {
			continue
		}
		switch d := 2*(counts[l][to[l]]-counts[l][from[l]]) + 2; {
		case d < 0:
			return true
		case d > 0:
			return false
		}
	}
	return false
}
