package dispatcher

import (
	"github.com/apiary-io/apiary/mesh/endpoint"
	"github.com/apiary-io/apiary/swarm/api"
)

// proven returns the tasks as a node in the routing mesh is sent them:
// copies, each with the managers' proof that it is assigned to the node
// (api.Task.AssignmentProof, endpoint.SignAssignment), which the node
// publishes with the task's routing entry so that every other node can
// check it. A node outside the mesh, or a cluster without an assignment
// key yet, gets the tasks as they are. A task that cannot be signed (its
// endpoint does not convert) goes without a proof: the mesh refuses its
// entry, nothing else is affected.
func (d *Dispatcher) proven(s *nodeSession, tasks []*api.Task) []*api.Task {
	if !s.mesh || len(tasks) == 0 {
		return tasks
	}
	d.mu.Lock()
	key := d.assignKey
	d.mu.Unlock()
	if key == nil {
		return tasks
	}
	out := make([]*api.Task, len(tasks))
	for i, t := range tasks {
		c := *t // the store's object is shared: only the copy changes
		proof, err := endpoint.SignAssignment(key, t)
		if err != nil {
			d.log.Warn("task sent without an assignment proof", "task", t.ID, "err", err)
		}
		c.AssignmentProof = proof
		out[i] = &c
	}
	return out
}

// assignKeyWatch returns a channel closed at the next change of the
// assignment key.
func (d *Dispatcher) assignKeyWatch() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.assignKeyChanged
}
