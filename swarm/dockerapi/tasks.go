package dockerapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"github.com/docker/docker/api/types/swarm"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
)

// desiredStates maps Docker's desired-state filter values to ours: a task
// waiting out its restart delay (desired READY) is wanted running too.
var desiredStates = map[string][]api.TaskState{
	"running":  {api.TaskStateRunning, api.TaskStateReady},
	"shutdown": {api.TaskStateShutdown, api.TaskStateRemove},
	"accepted": {api.TaskStateAccepted},
}

func (s *Server) taskList(w http.ResponseWriter, r *http.Request) error {
	f, err := s.listFilters(r, "desired-state", "id", "label", "name", "node", "service", "_up-to-date")
	if err != nil {
		return err
	}
	var states []api.TaskState
	for _, v := range f.Get("desired-state") {
		st, ok := desiredStates[v]
		if !ok {
			return errInvalid(fmt.Errorf("invalid filter 'desired-state=%s': want running, shutdown or accepted", v))
		}
		states = append(states, st...)
	}
	upToDate := len(f.Get("_up-to-date")) > 0
	ctx := r.Context()
	// One listing per service and node named (the control API filters by
	// one of each); the filter count bounds how many.
	svcs, nodes := f.Get("service"), f.Get("node")
	if len(svcs) == 0 {
		svcs = []string{""}
	}
	if len(nodes) == 0 {
		nodes = []string{""}
	}
	seen := map[string]bool{}
	templates := map[string]*template{}
	out := []swarm.Task{}
	for _, sv := range svcs {
		for _, nd := range nodes {
			tasks, err := s.cfg.Backend.ListTasks(ctx, control.TaskFilter{Service: sv, Node: nd, DesiredStates: states})
			if err != nil {
				if sv != "" || nd != "" {
					// Docker answers an empty list for a filter naming
					// nothing.
					if _, ok := statusIsNotFound(err); ok {
						continue
					}
				}
				return err
			}
			for _, t := range tasks {
				if seen[t.ID] || !anyPrefix(f, "id", t.ID) || !anyPrefix(f, "name", t.Name) || !allLabels(f, "label", taskLabels(t)) {
					continue
				}
				if upToDate && !current(t, templates, func() *api.Service {
					svc, err := s.cfg.Backend.GetService(ctx, t.ServiceID)
					if err != nil {
						return nil
					}
					return svc
				}) {
					continue
				}
				seen[t.ID] = true
				out = append(out, dockerTask(t))
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Meta.CreatedAt.Before(out[j].Meta.CreatedAt) })
	return writeJSON(w, http.StatusOK, out)
}

// template is a service's current task template, as the orchestrator
// compares it: its spec version, and its JSON form.
type template struct {
	version uint64
	json    string
}

// current reports whether t runs its service's current template (the
// _up-to-date filter, which `docker service create|update` watch): the
// orchestrator's rule, equal spec versions or equal templates (a scale
// changes the version, not the template).
func current(t *api.Task, cache map[string]*template, get func() *api.Service) bool {
	tpl, ok := cache[t.ServiceID]
	if !ok {
		if svc := get(); svc != nil {
			b, _ := json.Marshal(svc.Spec.TaskTemplate)
			tpl = &template{svc.SpecVersion, string(b)}
		}
		cache[t.ServiceID] = tpl
	}
	if tpl == nil {
		return false
	}
	if t.SpecVersion == tpl.version {
		return true
	}
	b, err := json.Marshal(t.Spec)
	return err == nil && string(b) == tpl.json
}

func taskLabels(t *api.Task) map[string]string {
	if t.Spec.Container != nil {
		return t.Spec.Container.Labels
	}
	return nil
}

// dockerTask maps a task; a pending task's reason (the scheduler's "no
// suitable node (...)") is its Err, where `docker service ps` shows it.
func dockerTask(t *api.Task) swarm.Task {
	d := fromAPITask(t)
	if t.Status.State == api.TaskStatePending && d.Status.Err == "" {
		d.Status.Err = t.Status.Message
	}
	return d
}

func statusIsNotFound(err error) (int, bool) {
	code, _ := statusOf(err)
	return code, code == http.StatusNotFound
}

func (s *Server) taskInspect(w http.ResponseWriter, r *http.Request) error {
	t, err := s.cfg.Backend.GetTask(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, dockerTask(t))
}
