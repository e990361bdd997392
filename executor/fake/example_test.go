package fake_test

import (
	"context"
	"fmt"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/swarm/api"
)

// Tasks run in memory, each following the script Behavior picks for it;
// every operation is recorded for assertions.
func Example() {
	ctx := context.Background()
	ex := fake.New(fake.Config{
		Hostname: "worker-1",
		Behavior: func(t *api.Task) fake.Script {
			if t.ServiceAnnotations.Name == "flaky" {
				return fake.Script{ExitAfter: 10 * time.Millisecond, ExitCode: 3}
			}
			return fake.Script{} // run until stopped
		},
	})
	task := func(id, service string) *api.Task {
		return &api.Task{
			ID:                 id,
			ServiceAnnotations: api.Annotations{Name: service},
			Spec:               api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
		}
	}

	flaky, _ := ex.Controller(task("t1", "flaky"))
	_ = flaky.Start(ctx) // Start prepares first
	st, _ := flaky.Wait(ctx)
	fmt.Println("flaky:", st.Message)

	web, _ := ex.Controller(task("t2", "web"))
	_ = web.Start(ctx)
	fmt.Println("running:", ex.Running())
	_ = ex.Kill("t2", 137) // a test crashes it
	st, _ = web.Wait(ctx)
	fmt.Println("web:", st.Message, "failed:", st.Failed())
	fmt.Println("t2:", ex.Ops("t2"))
	// Output:
	// flaky: exit status 3
	// running: [t2]
	// web: exit status 137 failed: true
	// t2: [prepare start kill exit]
}
