package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/examples/webapp"
)

// TestMain lets the test binary serve as the demo's web app: the demo runs
// its own executable as the service's tasks.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "webapp" {
		os.Exit(webapp.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestDemoTellsTheWholeStory(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"--update-delay=300ms", "--data-dir", t.TempDir()}, &out, &errOut)
	t.Log("\n" + out.String())
	if code != 0 {
		t.Fatalf("demo exited %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"[1/7] start 1 manager and 3 workers",
		"manager   127.0.",
		"[2/7] network create app; service create db",
		"1/1 answer HTTP with v1; VIP 127.100.",
		"[3/7] service create app --replicas 3 -p ",
		"3/3 answer HTTP with v1",
		"app → db by name, asked through :",
		"db.1 answered, at db's VIP 127.100.",
		"[4/7] service scale app=5",
		"5 running",
		"dies (",
		"node down; rescheduled: 5 running",
		"5 replaced one at a time",
		"5/5 answer HTTP with v2",
		"[7/7] service scale app=2",
		"2/2 answer HTTP with v2",
		"demo complete: every step converged",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// The published port's checks, one per step from the third: every
	// node answered from exactly the running replicas.
	if strings.Contains(out.String(), "the routing mesh was behind on some node") {
		t.Error("the demo accepted a node that reached only some replicas")
	}
	for _, c := range []struct{ nodes, replicas string }{
		{"every node (manager worker-1 worker-2 worker-3)", "app.1 app.2 app.3"},
		{"every node (manager worker-1 worker-2 worker-3)", "app.1 app.2 app.3 app.4 app.5"},
		{"down)", "app.1 app.2 app.3 app.4 app.5"}, // after the death
		{"down)", "app.1 app.2 app.3 app.4 app.5"}, // after the update
		{"down)", "app.1 app.2"},
	} {
		full := c.nodes + ": answered by " + c.replicas + " ("
		if !strings.Contains(out.String(), full) {
			t.Errorf("demo output lacks %q", full)
		}
	}
	if n := strings.Count(out.String(), "app → db by name"); n != 5 {
		t.Errorf("app called db by name in %d checks, want 5", n)
	}
}

func TestDemoRejectsBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--workers=1"}, &out, &errOut); code != 2 {
		t.Fatalf("--workers=1 exited %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), "--workers: must be at least 2") {
		t.Fatalf("error does not name the flag: %q", errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"--port=70000"}, &out, &errOut); code != 2 {
		t.Fatalf("--port=70000 exited %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), "--port: must be 1 to 65535") {
		t.Fatalf("error does not name the flag: %q", errOut.String())
	}
}
