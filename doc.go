// Package apiary is an embeddable library for building container
// orchestrators: the class of system Docker Swarm mode and moby/swarmkit are.
//
// A user declares desired state ("service web: 5 replicas of this program,
// rolling updates one at a time with a 10 s delay") and the cluster makes the
// actual state match and keeps it so. The control loop, on the leading
// manager:
//
//	control API → store → orchestrator → allocator → scheduler → dispatcher ⇒ agent → executor
//
// Where each part lives:
//
//   - swarm/api: the object model (Cluster, Node, Service, Task, Network,
//     Secret, Config), validation and the task state machine. Imports
//     nothing of Apiary's.
//   - store: in-memory indexed state on copy-on-write B-trees
//     (tidwall/btree) with optimistic concurrency, transactions that
//     replicate through a Proposer, watches, snapshots.
//   - raft: the Proposer that replicates the store across managers.
//   - scheduler: pure placement decisions (filters, scores, explanations),
//     with a test harness in scheduler/schedtest.
//   - executor: how a worker runs tasks; executor/process (OS processes, the
//     embedded default) and executor/fake (tests and simulation).
//   - pki: the cluster's certificate authority, join tokens and mutual TLS.
//   - mesh: service discovery and load balancing (routing mesh).
//   - swarm: the embedding API that assembles managers and workers, and the
//     Go client; swarm/* holds the manager loops and the worker agent.
//   - examples: runnable programs; examples/demo tells the whole story on a
//     real cluster in one process.
//
// See README.md for the two commands that run the demo and the tests, and
// docs/architecture.md for what is built and how it maps to the design.
package apiary
