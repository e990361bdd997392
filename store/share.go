package store

import (
	"reflect"

	"github.com/apiary-io/apiary/internal/wire"
	"github.com/apiary-io/apiary/swarm/api"
)

// shareParts makes an object about to be stored share, with objects
// already stored, the parts it holds equal to theirs. The parts are
// immutable as the objects are, so nobody can tell, and the collector has
// fewer objects to mark: every task holds a copy of its service's task
// template (its runtime spec, placement, lists), which it is born with and
// keeps through its status updates; on a manager holding 100,000 tasks,
// sharing them took a third off the time of every collection (the tasks'
// template parts were 400,000 of the heap's 786,000 objects).
//
// prev is the version obj replaces, or nil. A task takes the parts of
// prev when they are the same (a status update), otherwise its service's
// (a new task of the current template). Same compares encodings: what a
// follower decodes, so every replica stores what it would have stored.
func shareParts(w *dbWriter, obj, prev api.Object) {
	t, ok := obj.(*api.Task)
	if !ok {
		return
	}
	if p, ok := prev.(*api.Task); ok {
		shareTaskParts(t, &p.Spec, &p.ServiceAnnotations)
	}
	if t.ServiceID == "" {
		return
	}
	if s, ok := w.get(kindByName[api.KindService], t.ServiceID).(*api.Service); ok {
		shareTaskParts(t, &s.Spec.TaskTemplate, &s.Spec.Annotations)
	}
}

// shareTaskParts points t's spec and service annotations at spec and
// annotations where they are the same, unless they already are.
func shareTaskParts(t *api.Task, spec *api.TaskSpec, annotations *api.Annotations) {
	if !sameSpec(&t.Spec, spec) && wire.Same(&t.Spec, spec) {
		t.Spec = *spec
	}
	if !sameLabels(t.ServiceAnnotations.Labels, annotations.Labels) && wire.Same(&t.ServiceAnnotations, annotations) {
		t.ServiceAnnotations = *annotations
	}
}

// sameSpec reports whether a and b already share what a spec holds by
// reference: its runtime spec, the first of which tells.
func sameSpec(a, b *api.TaskSpec) bool {
	switch {
	case a.Process != nil:
		return a.Process == b.Process
	case a.Container != nil:
		return a.Container == b.Container
	}
	return true // nothing that big to share
}

// sameLabels reports whether a and b are one map, or a is nil: then
// there is nothing to share.
func sameLabels(a, b map[string]string) bool {
	return a == nil || reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
