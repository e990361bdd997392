package store

import "github.com/apiary-io/apiary/swarm/api"

// By selects objects in a Find. Not every By applies to every kind: a Find
// with one that does not returns ErrInvalidFind.
type By interface{ isBy() }

type byAll struct{}
type byName string
type byIDPrefix string
type byServiceID string
type byNodeID string
type bySlot struct {
	serviceID string
	slot      uint64
}
type byDesiredState api.TaskState
type byRole api.NodeRole

func (byAll) isBy()          {}
func (byName) isBy()         {}
func (byIDPrefix) isBy()     {}
func (byServiceID) isBy()    {}
func (byNodeID) isBy()       {}
func (bySlot) isBy()         {}
func (byDesiredState) isBy() {}
func (byRole) isBy()         {}

// All selects every object of the kind.
var All By = byAll{}

// ByName selects the object with this name (Annotations.Name; for nodes
// also... the spec name). Names are unique per kind except for tasks.
func ByName(name string) By { return byName(name) }

// ByIDPrefix selects objects whose ID starts with p.
func ByIDPrefix(p string) By { return byIDPrefix(p) }

// ByServiceID selects the tasks of a service.
func ByServiceID(id string) By { return byServiceID(id) }

// ByNodeID selects the tasks on a node.
func ByNodeID(id string) By { return byNodeID(id) }

// BySlot selects the tasks of one slot of a replicated service.
func BySlot(serviceID string, slot uint64) By { return bySlot{serviceID, slot} }

// ByDesiredState selects tasks by desired state.
func ByDesiredState(s api.TaskState) By { return byDesiredState(s) }

// ByRole selects nodes by role.
func ByRole(r api.NodeRole) By { return byRole(r) }
