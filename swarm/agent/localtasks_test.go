package agent_test

import (
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
)

// TestOnTasksFollowsTheNodesTasks: OnTasks sees each task the node runs
// with its latest status and host ports, and sees it go when it is removed.
func TestOnTasksFollowsTheNodesTasks(t *testing.T) {
	var mu sync.Mutex
	var last []*api.Task
	d := newFakeDispatcher()
	ex := fake.New(fake.Config{})
	newHostNode(t, d, ex, agent.Config{Addr: "127.0.0.1:4242", OnTasks: func(ts []*api.Task) {
		mu.Lock()
		last = ts
		mu.Unlock()
	}})
	seen := func(want func([]*api.Task) bool) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return want(last)
		}
	}
	d.assign(webTask("t1"))
	testutil.Eventually(t, 10*time.Second, "t1 RUNNING with its host ports", seen(func(ts []*api.Task) bool {
		return len(ts) == 1 && ts[0].ID == "t1" && ts[0].Status.State == api.TaskStateRunning &&
			len(ts[0].Status.PortStatus) == 2 && ts[0].Status.PortStatus[0].PublishedPort != 0 &&
			ts[0].ServiceAnnotations.Name == "web"
	}))
	d.assign(webTask("t2"))
	testutil.Eventually(t, 10*time.Second, "t1 and t2 RUNNING", seen(func(ts []*api.Task) bool {
		return len(ts) == 2 && ts[0].Status.State == api.TaskStateRunning && ts[1].Status.State == api.TaskStateRunning
	}))
	d.unassign("t1")
	testutil.Eventually(t, 10*time.Second, "t1 gone", seen(func(ts []*api.Task) bool {
		return len(ts) == 1 && ts[0].ID == "t2"
	}))
}
