package example_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/apiary-io/apiary/internal/rpcgen/example"
	"github.com/apiary-io/apiary/swarm/rpc"
)

type greeter struct{}

func (greeter) Greet(_ context.Context, name string, times int, after time.Duration) (*example.Greeting, error) {
	if name == "" {
		return nil, fmt.Errorf("greet: %w", example.ErrUnknown)
	}
	return &example.Greeting{Text: strings.Repeat("hello "+name+" ", times), After: after}, nil
}

func (greeter) List(context.Context) ([]example.Greeting, error) {
	return []example.Greeting{{Text: "a"}, {Text: "b"}}, nil
}

func (greeter) Forget(_ context.Context, name string) error {
	if name != "known" {
		return fmt.Errorf("forget %q: %w", name, example.ErrUnknown)
	}
	return nil
}

type sliceStream struct{ items []example.Greeting }

func (s *sliceStream) Recv() (*example.Greeting, error) {
	if len(s.items) == 0 {
		return nil, io.EOF
	}
	g := s.items[0]
	s.items = s.items[1:]
	return &g, nil
}

func (greeter) Watch(_ context.Context, f example.Filter) (rpc.Stream[example.Greeting], error) {
	s := &sliceStream{}
	for i := range f.Count {
		s.items = append(s.items, example.Greeting{Text: fmt.Sprintf("%s%d", f.Prefix, i)})
	}
	return s, nil
}

// serve serves impl with guard and returns a client of it over real gRPC.
func serve(t *testing.T, impl example.Greeter, guard rpc.Guard) example.Greeter {
	t.Helper()
	s := grpc.NewServer()
	example.RegisterGreeter(s, impl, guard)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, rpc.DialOptions()...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return example.NewGreeterClient(conn)
}

// Every shape of method crosses the wire: several parameters, a slice, an
// error alone, a stream; sentinels survive; the guard refuses before the
// handler; Unimplemented says why.
func TestGeneratedGlueOverGRPC(t *testing.T) {
	ctx := context.Background()
	c := serve(t, greeter{}, nil)
	g, err := c.Greet(ctx, "bee", 2, 3*time.Second)
	if err != nil || g.Text != "hello bee hello bee " || g.After != 3*time.Second {
		t.Fatalf("Greet: %+v, %v", g, err)
	}
	if _, err := c.Greet(ctx, "", 1, 0); !errors.Is(err, example.ErrUnknown) || status.Code(err) != codes.NotFound {
		t.Fatalf("Greet's sentinel: %v", err)
	}
	l, err := c.List(ctx)
	if err != nil || len(l) != 2 || l[1].Text != "b" {
		t.Fatalf("List: %v, %v", l, err)
	}
	if err := c.Forget(ctx, "known"); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if err := c.Forget(ctx, "other"); !errors.Is(err, example.ErrUnknown) || !strings.Contains(err.Error(), `forget "other"`) {
		t.Fatalf("Forget's error: %v", err)
	}
	st, err := c.Watch(ctx, example.Filter{Prefix: "g", Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Text)
	}
	if strings.Join(got, ",") != "g0,g1,g2" {
		t.Fatalf("Watch: %v", got)
	}

	refused := errors.New("not you")
	var seen []string
	guarded := serve(t, greeter{}, func(_ context.Context, method string) error {
		seen = append(seen, method)
		return fmt.Errorf("%s: %w", method, refused)
	})
	if _, err := guarded.List(ctx); err == nil || !strings.Contains(err.Error(), "not you") {
		t.Fatalf("guarded List: %v", err)
	}
	if len(seen) != 1 || seen[0] != example.GreeterMethods[1] {
		t.Fatalf("the guard saw %v", seen)
	}

	notHere := errors.New("this node does not greet")
	u := serve(t, example.UnimplementedGreeter{Err: notHere}, nil)
	if err := u.Forget(ctx, "x"); err == nil || !strings.Contains(err.Error(), "does not greet") {
		t.Fatalf("Unimplemented with a reason: %v", err)
	}
	u = serve(t, example.UnimplementedGreeter{}, nil)
	// A stream's refusal arrives with its first message.
	ust, err := u.Watch(ctx, example.Filter{})
	if err == nil {
		_, err = ust.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("Unimplemented stream: %v", err)
	}
}
