package executortest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/executortest"
	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/swarm/api"
)

// harness adapts the suite to an executor, here the fake one. The
// executor's tests run the suite with it (conformance_test.go):
//
//	func TestConformance(t *testing.T) { executortest.Run(t, harness) }
var harness = executortest.Harness{
	NewExecutor: func(*testing.T) executor.Executor { return newExecutor() },
	Task:        func(_ *testing.T, kind executortest.Kind) *api.Task { return newTask(kind) },
	Slack:       2 * time.Second, // the fake starts and stops at once
}

// scripts make the fake's tasks behave as the suite's kinds require.
var scripts = map[string]fake.Script{
	executortest.RunUntilStopped.String(): {},
	executortest.ExitZero.String():        {ExitAfter: time.Millisecond},
	executortest.ExitThree.String():       {ExitAfter: time.Millisecond, ExitCode: 3},
	executortest.IgnoreTerm.String():      {IgnoreStop: true, Output: []string{executortest.Ready}},
	executortest.PrintOutput.String():     {ExitAfter: time.Millisecond, Output: executortest.OutputLines},
}

func newExecutor() executor.Executor {
	return fake.New(fake.Config{Behavior: func(t *api.Task) fake.Script {
		return scripts[t.ServiceAnnotations.Name]
	}})
}

// newTask builds a task of the kind, named after it so the fake finds
// its script.
func newTask(kind executortest.Kind) *api.Task {
	t := &api.Task{
		ID:                 executortest.NewTaskID(),
		ServiceAnnotations: api.Annotations{Name: kind.String()},
		Spec:               api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
	}
	switch kind {
	case executortest.IgnoreTerm:
		grace := 300 * time.Millisecond // short: the suite waits it out
		t.Spec.Process.StopGracePeriod = &grace
	case executortest.Unsupported:
		t.Spec.Process = nil // no runtime: the executor must refuse it
	}
	return t
}

// The tasks the harness builds, run on the executor it makes, as the suite
// runs them.
func Example() {
	ctx := context.Background()
	ex := newExecutor()
	for _, kind := range []executortest.Kind{executortest.ExitZero, executortest.ExitThree, executortest.Unsupported} {
		c, err := ex.Controller(newTask(kind))
		if err != nil {
			fmt.Println(kind, "refused:", errors.Is(err, executor.ErrRuntimeMismatch))
			continue
		}
		if err := c.Start(ctx); err != nil {
			fmt.Println(kind, err)
			continue
		}
		st, _ := c.Wait(ctx)
		fmt.Println(kind, "exit code", st.ExitCode)
	}
	// Output:
	// ExitZero exit code 0
	// ExitThree exit code 3
	// Unsupported refused: true
}
