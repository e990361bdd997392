// Package api is Apiary's object model: the plain Go structs that the store
// holds, the manager reconciles and the workers run, with their validation and
// the task state machine. It performs no I/O and imports nothing of Apiary's,
// so every other package can depend on it.
//
// Names follow Docker's Engine API swarm types (TaskTemplate, Mode,
// UpdateConfig, EndpointSpec, Placement, ...) wherever the concept is the same,
// so users of Docker Swarm recognise them. Every object has an ID, a Meta with
// the raft index of its last write (Version, used for optimistic concurrency),
// a user-owned Spec and a system-owned Status.
package api
