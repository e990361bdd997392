// Package swarm is Apiary's embedding API: it assembles the building blocks
// (store, scheduler, executors) and the manager loops (orchestrator,
// allocator, placer, dispatcher) into managers and workers, and gives a Go
// Client to drive them.
//
//	mgr, _ := swarm.StartManager(ctx, swarm.DefaultManagerConfig())
//	defer mgr.Stop()
//	w, _ := swarm.StartWorker(ctx, swarm.WorkerConfig{Manager: mgr.Dispatcher(), Executor: exec})
//	c := mgr.Client()
//	svc, _ := c.CreateService(ctx, spec)
//	_ = c.WaitConverged(ctx, svc.ID)
//
// This build runs one manager with its store in memory and workers in the
// same process; the store's Proposer (raft) and a networked Dispatcher slot
// in behind the same interfaces.
package swarm
