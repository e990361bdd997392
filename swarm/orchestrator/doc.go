// Package orchestrator turns services into tasks. It is built the way
// go.etcd.io/raft is: the decisions are pure functions of state (Reconcile
// takes a service, its tasks and the nodes, and returns a Plan of task
// creations, desired-state changes and deletions), and a thin loop
// (Orchestrator, a loop.Loop keyed by service ID) feeds them from store
// events and writes their plans back.
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
//
// Plans are bounded: one makes at most Input.MaxChanges task writes
// (DefaultMaxChanges), whole decisions only, and says when it left more
// (Plan.More). The loop writes a plan in transactions of
// TransactionChanges, reads the service's spec again between them, and
// stops as soon as it changed; then it reconciles again from the store. A
// service of 100,000 replicas is thus created in ten plans of a hundred
// transactions, and a scale-down or removal in the middle stops it within
// one transaction.
package orchestrator
