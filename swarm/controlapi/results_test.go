package controlapi_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
	"github.com/apiary-io/apiary/swarm/rpc"
)

type sharedReq struct{ Ref string }
type sharedResp struct{ Service, Task, Listed bool }

// A method served over RPC answers with the stored objects themselves
// (its result is only encoded), and a caller in this process gets copies
// it may change without changing the store.
func TestResultsAreSharedOnlyWhenServed(t *testing.T) {
	srv, st := newServer(t)
	svc, err := srv.CreateService(ctx, spec("web", 1))
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, st, func(tx store.Tx) error {
		return tx.CreateTask(&api.Task{ID: "task1", ServiceID: svc.ID, Slot: 1, DesiredState: api.TaskStateRunning})
	})
	stored := func() (s *api.Service, k *api.Task) {
		st.ViewShared(func(tx store.ReadTx) { s, k = tx.GetService(svc.ID), tx.GetTask("task1") })
		return s, k
	}
	ask := func(ctx context.Context, r *sharedReq) (*sharedResp, error) {
		s, k := stored()
		got, err := srv.GetService(ctx, r.Ref)
		if err != nil {
			return nil, err
		}
		task, err := srv.GetTask(ctx, "task1")
		if err != nil {
			return nil, err
		}
		listed, err := srv.ListTasks(ctx, controlapi.TaskFilter{Service: svc.ID})
		if err != nil || len(listed) != 1 {
			t.Errorf("ListTasks = %d tasks, %v", len(listed), err)
			return &sharedResp{}, nil
		}
		return &sharedResp{Service: got == s, Task: task == k, Listed: listed[0] == k}, nil
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	desc := rpc.NewService("apiary.test.Shared", nil, []rpc.UnaryMethod{rpc.HandleUnary("Ask", ask)}, nil)
	g.RegisterService(&desc, nil)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, rpc.DialOptions()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	served, err := rpc.Call[sharedResp](ctx, conn, "apiary.test.Shared", "Ask", &sharedReq{Ref: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if !served.Service || !served.Task || !served.Listed {
		t.Errorf("served over RPC, shared (service, task, listed) = %v, %v, %v; want the stored objects", served.Service, served.Task, served.Listed)
	}

	local, err := ask(ctx, &sharedReq{Ref: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if local.Service || local.Task || local.Listed {
		t.Errorf("called in process, shared (service, task, listed) = %v, %v, %v; want copies", local.Service, local.Task, local.Listed)
	}
	got, err := srv.GetService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	got.Spec.Annotations.Labels = map[string]string{"changed": "by the caller"}
	got.Spec.TaskTemplate.Process.Command[0] = "changed"
	if s, _ := stored(); s.Spec.Annotations.Labels != nil || s.Spec.TaskTemplate.Process.Command[0] != "app" {
		t.Errorf("a change to an in-process result reached the store: %+v", s.Spec)
	}
}
