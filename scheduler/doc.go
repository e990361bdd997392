// Package scheduler decides on which node each pending task runs. It is
// pure: no I/O, no goroutines, no clock. It takes a read-only view of the
// cluster and the pending tasks and returns one Decision per task; the
// manager's loop feeds it from store events and writes the decisions back.
//
//	s := scheduler.New(scheduler.DefaultConfig())
//	res := s.Schedule(scheduler.State{Nodes: nodes, Tasks: placed}, pending)
//	for _, d := range res.Decisions {
//		// d.TaskID, d.NodeID ("" if unplaceable), d.Reason
//	}
//
// A pending task normally has no NodeID; one that has (a global service's
// task, created for its node) is pinned: only that node is considered, and
// it must still pass every filter.
//
// A loop that keeps its view between calls uses a NodeSet instead of a
// State: it applies store events to the set (SetNode, RemoveNode, AddTask,
// RemoveTask) and calls ScheduleSet, which also records its decisions in the
// set.
//
// # The pipeline
//
// Pending tasks are grouped: tasks with the same service ID and spec version
// (and pinned node) are identical, so a group is placed together. For each group, in the order
// its first task appears:
//
//  1. PreFilter. Plugins that implement PreFilterPlugin check the group once;
//     a refusal (a placement constraint that does not parse) leaves every
//     task of the group unplaced with that reason. A spread preference
//     that does not parse does the same.
//  2. Filter. Every node goes through the filters in order; the first that
//     refuses it is recorded with its Status. The built-ins, in order:
//     NodeAvailable (READY, and availability active: pause and drain take
//     no new tasks), Executor (a "process" node runs process tasks, a
//     "docker" node container tasks, a "fake" node anything), Platform,
//     Constraints (node.id, node.hostname, node.role, node.platform.os,
//     node.platform.arch, node.labels.K, engine.labels.K with == and !=),
//     MaxReplicas (per node), HostPorts (host-mode published ports) and
//     Resources (CPU, memory, generic resources: counted or named units).
//  3. Score. Each node that passed gets the weighted sum of the score
//     plugins: by default ServiceSpread (fewest tasks of the service) far
//     above NodeLoad (fewest tasks overall); for a service labelled
//     apiary.scheduler.strategy=binpack, Binpack (most allocated node) far
//     above NodeLoad reversed (most tasks).
//  4. Spread preferences. With Placement.Preferences spread=node.labels.K
//     (nested: the first, then the next inside each of its values), the
//     passing nodes form a tree by label value; nodes missing the label form
//     a group of their own, as in Swarm. Each task goes down the tree to the
//     branch with the fewest tasks of the service (counted on every node of
//     the branch, eligible or not; ties: label value, the missing-label
//     group last), then to its best-scored node (ties: lowest node ID).
//  5. Reserve. Reserve plugins may still refuse the chosen node (the next
//     best is tried); then the task is committed: the node's NodeInfo now
//     counts it, so later tasks of the same call see its resources, ports
//     and spread counts.
//
// Only the node that just received a task changes, so the scheduler
// re-filters and re-scores that node alone and moves it in a heap: a group
// of k tasks on n nodes costs one pass over the nodes plus k·log n, not k
// passes. This requires plugins to be node-local; a plugin that is not says
// so with CrossNodePlugin and gets one pass per task.
//
// # Explanations
//
// A task that fits nowhere is left unplaced with a Reason such as
//
//	no suitable node (1 node not available for new tasks; 2 nodes insufficient memory (need 2GiB, max free 1GiB); 3 nodes constraint node.labels.zone==a not met)
//
// and an Explanation listing every refused node with the plugin and Status
// that refused it (Config.ExplainAll attaches one to placed tasks too, and
// Scheduler.Explain answers "why not" for any task). The manager keeps such
// a task PENDING with the reason, and schedules it again when the cluster
// changes.
//
// # Extending
//
// Plugins follow the Kubernetes scheduling framework's extension points:
// FilterPlugin (with optional PreFilterPlugin), ScorePlugin with a weight,
// and ReservePlugin (Reserve/Unreserve). Built-ins use the same interfaces;
// register your own with Config.Register or Config.RegisterScore, remove a
// built-in with Config.Disable. Package schedtest is a harness to test a
// policy against nodes and tasks built with fluent helpers.
//
// # Determinism
//
// The same input gives the same decisions: groups are placed in input
// order, and every choice is a total order ending in the node ID. The
// scheduler keeps no state between calls.
package scheduler
