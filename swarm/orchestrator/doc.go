// Package orchestrator turns services into tasks. It is built the way
// go.etcd.io/raft is: the decisions are pure functions of state (Reconcile
// takes a service, its tasks and the nodes, and returns a Plan of task
// creations, desired-state changes and deletions), and a thin loop
// (Orchestrator) feeds them from store events and writes their plans back.
//
// Every decision is level-triggered and derived from what the store holds,
// never from timers or memory of the past: a restart delay is a task's
// StartAfter, an update's progress is read from task versions and
// timestamps. A new leader therefore resumes exactly where the old one was.
//
// One reconciler covers replicated and global services: both keep "slots"
// (a slot number, or a node for global services), each slot runs at most one
// current task, and the restart, rolling-update and history rules apply per
// slot alike. Jobs (replicated-job, global-job) have their own reconcilers
// over the same slots: tasks run to completion, a completed slot is done,
// and a spec change starts a new iteration.
package orchestrator
