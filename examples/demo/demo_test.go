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
		"[1/6] start 1 manager and 3 workers",
		"[2/6] service create app --replicas 3",
		"3/3 answer HTTP with v1",
		"[3/6] service scale app=5",
		"5 running",
		"dies (",
		"node down; rescheduled: 5 running",
		"5 replaced one at a time",
		"5/5 answer HTTP with v2",
		"[6/6] service scale app=2",
		"2/2 answer HTTP with v2",
		"demo complete: every step converged",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
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
}
