package rpc

import (
	"google.golang.org/grpc"
)

// StreamWorkers is how many goroutines a server keeps to run calls.
//
// Without them gRPC starts a goroutine per call, whose stack starts small
// and is grown by copying as the handler goes deeper (through the
// store's transaction, the allocator and the index searches): at 64
// concurrent writers that copying was 4% of the control API's CPU. A
// worker keeps its grown stack for 65,536 calls. A call that finds every
// worker busy (handlers wait for raft commits) still gets a goroutine of
// its own, so this bounds no one; idle workers cost their stacks, a few
// KiB each.
const StreamWorkers = 64

// StreamWorkersOption is the server option that keeps StreamWorkers.
func StreamWorkersOption() grpc.ServerOption { return grpc.NumStreamWorkers(StreamWorkers) }
