package orchestrator

import (
	"sort"

	"github.com/apiary-io/apiary/internal/idmap"
	"github.com/apiary-io/apiary/swarm/api"
)

// view is the loop's view of the tasks, by service, kept from the store's
// shared events (store.ViewAndWatchShared): it holds the objects the store
// holds (the store never changes an object once stored, and Reconcile never
// changes its input), so it costs only its maps, and a reconciliation reads
// a service's tasks without copying them. Reading a service of 100,000
// tasks from the store copied every one, a third of a pass's time and
// ~160 MB live during the pass. (The tasks a new leader starts from are
// read from the store, so copies, until they change.)
type view struct {
	services map[string]*idmap.Map[*api.Task]
}

func newView() *view { return &view{services: map[string]*idmap.Map[*api.Task]{}} }

// put records a created or updated task.
func (v *view) put(t *api.Task) {
	s := v.services[t.ServiceID]
	if s == nil {
		s = &idmap.Map[*api.Task]{}
		v.services[t.ServiceID] = s
	}
	s.Put(t.ID, t)
}

// delete forgets a deleted task, and its service once it has none.
func (v *view) delete(t *api.Task) {
	s := v.services[t.ServiceID]
	if s == nil {
		return
	}
	s.Delete(t.ID)
	if s.Len() == 0 {
		delete(v.services, t.ServiceID)
	}
}

// tasks returns a service's tasks, ordered by ID so that the same state
// always gives the same plan.
func (v *view) tasks(serviceID string) []*api.Task {
	s := v.services[serviceID]
	if s == nil {
		return nil
	}
	out := make([]*api.Task, 0, s.Len())
	s.All(func(_ string, t *api.Task) bool { out = append(out, t); return true })
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// serviceIDs returns the services that have tasks.
func (v *view) serviceIDs() []string {
	ids := make([]string, 0, len(v.services))
	for id := range v.services {
		ids = append(ids, id)
	}
	return ids
}
