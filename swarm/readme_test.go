package swarm_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/process"
)

// section returns the text between the line holding begin and the next
// line holding end (both lines excluded).
func section(t *testing.T, file, text, begin, end string) string {
	t.Helper()
	_, after, ok := strings.Cut(text, begin)
	if !ok {
		t.Fatalf("%s: no %q", file, begin)
	}
	_, after, _ = strings.Cut(after, "\n")
	body, _, ok := strings.Cut(after, end)
	if !ok {
		t.Fatalf("%s: no %q after %q", file, end, begin)
	}
	return body[:strings.LastIndex(body, "\n")+1]
}

// TestREADMEEmbeddingSnippet: the README's embedding snippet is the code
// Example runs, so the README cannot show code that does not build or work.
func TestREADMEEmbeddingSnippet(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	snippet := section(t, "README.md", string(readme), "<!-- begin: swarm/example_test.go -->\n```go", "```")
	code := section(t, "example_test.go", string(example), "// README: begin", "// README: end")
	code = strings.TrimRight(code, "\n") + "\n"
	if snippet != code {
		t.Errorf("README.md's embedding snippet differs from swarm/example_test.go between the README markers:\n--- README.md\n%s--- example_test.go\n%s", snippet, code)
	}
	if n := strings.Count(snippet, "\n"); n > 30 {
		t.Errorf("the snippet is %d lines, want at most 30", n)
	}
}

// TestREADMEEmbeddingSnippetKillsItsTasks: the snippet stops with
// worker.Kill, which leaves no task process behind (Stop would).
func TestREADMEEmbeddingSnippetKillsItsTasks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	if err := runCluster(ctx, dir); err != nil {
		t.Fatal(err)
	}
	exec, err := process.New(process.Config{DataDir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Close()
	tasks, err := exec.ListTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 3 {
		t.Fatalf("%d task records, want the service's 3", len(tasks))
	}
	for _, task := range tasks {
		c, err := exec.Controller(task)
		if err != nil {
			t.Fatal(err)
		}
		// An exited task's Wait returns at once; a running one's would block.
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		st, err := c.Wait(wctx)
		wcancel()
		if err != nil {
			t.Errorf("task %s: %v (still running?)", task.ID, err)
		} else if st.Signal == "" && st.ExitCode == 0 {
			t.Errorf("task %s exited on its own (%+v), want killed", task.ID, st)
		}
	}
}
