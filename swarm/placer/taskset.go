package placer

import "github.com/apiary-io/apiary/swarm/api"

// taskSet is a set of tasks by ID that gives memory back as it empties. Go
// maps never release the space of deleted entries: the placer's view of a
// removed service of 100,000 tasks kept ~18 MB after they were gone. Once
// the set holds less than a quarter of the most it held, it moves to a
// fresh map (amortised O(1) per deletion).
type taskSet struct {
	m    map[string]*api.Task
	peak int
}

// shrinkFrom is the size below which a set is left alone.
const shrinkFrom = 1024

func newTaskSet() taskSet { return taskSet{m: map[string]*api.Task{}} }

func (s *taskSet) put(t *api.Task) {
	s.m[t.ID] = t
	s.peak = max(s.peak, len(s.m))
}

func (s *taskSet) delete(id string) {
	delete(s.m, id)
	if s.peak >= shrinkFrom && len(s.m) < s.peak/4 {
		m := make(map[string]*api.Task, len(s.m))
		for k, v := range s.m {
			m[k] = v
		}
		s.m, s.peak = m, len(m)
	}
}
