// Package example is a contract rpcgen generates glue for, so that its
// tests exercise every shape of method over real gRPC.
package example

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/apiary-io/apiary/swarm/rpc"
)

//go:generate go run github.com/apiary-io/apiary/internal/rpcgen -type Greeter -service apiary.example.Greeter

// Greeter is the contract.
type Greeter interface {
	// Greet has several parameters and one result.
	Greet(ctx context.Context, name string, times int, after time.Duration) (*Greeting, error)
	// List returns a slice.
	List(ctx context.Context) ([]Greeting, error)
	// Forget returns only an error.
	Forget(ctx context.Context, name string) error
	// Watch is a server stream.
	Watch(ctx context.Context, filter Filter) (rpc.Stream[Greeting], error)
}

// Greeting is a message.
type Greeting struct {
	Text  string        `json:"Text"`
	After time.Duration `json:"After,omitempty"`
}

// Filter is a parameter struct.
type Filter struct {
	Prefix string `json:"Prefix"`
	Count  int    `json:"Count"`
}

// ErrUnknown is a sentinel that crosses the wire.
var ErrUnknown = errors.New("unknown name")

func init() { rpc.RegisterError("EXAMPLE_UNKNOWN", ErrUnknown, codes.NotFound) }
