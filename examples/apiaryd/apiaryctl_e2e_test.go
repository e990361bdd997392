//go:build linux

package main_test

import (
	"encoding/json"
	"fmt"
	stdmaps "maps"
	"strings"
	"testing"
	"time"
)

// plannedHosts reads where `service create|update --dry-run` says the
// service's new tasks go: its "+" and "~" lines' "on HOST", by host.
func plannedHosts(t *testing.T, plan string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range strings.Split(plan, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || (f[0] != "+" && f[0] != "~") {
			continue
		}
		_, host, ok := strings.Cut(l, " on ")
		if !ok {
			t.Fatalf("a planned task placed nowhere: %q", l)
		}
		out[strings.TrimSpace(host)]++
	}
	return out
}

// The real binaries: apiaryd --log-format json logs JSON lines; apiaryd
// join --availability drain makes a node that takes no task;
// apiaryctl's --dry-run plans the placement that follows when the same
// command runs without it (a spread over node labels, then a constraint
// that moves tasks), service create waits with its progress display,
// service ps and node ps filter and format their tasks, and service ls
// -q lists IDs.
func TestBinariesApiaryctlDryRunAndLists(t *testing.T) {
	e := startupE2E(t)
	m1addr, w1addr, w2addr := addr3(t, 31), addr3(t, 32), addr3(t, 33)
	m1 := e.launch("m1", m1addr, "077", "init", "--listen-addr", m1addr, "--executor", "fake", "--hostname", "m1", "--data-path", "none", "--log-format", "json")
	e.waitAnswers("m1")
	wt := e.workerToken("m1")
	e.launch("w1", w1addr, "077", "join", "--listen-addr", w1addr, "--executor", "fake", "--hostname", "w1", "--data-path", "none", "--log-level", "warn", "--token", wt, m1addr)
	e.launch("w2", w2addr, "077", "join", "--listen-addr", w2addr, "--executor", "fake", "--hostname", "w2", "--data-path", "none", "--log-level", "warn", "--token", wt, m1addr)
	// A node joining drained takes no task from the start; a bad
	// availability is refused before the node is made.
	w3addr := addr3(t, 34)
	bad := e.launch("bad", w3addr, "077", "join", "--listen-addr", w3addr, "--executor", "fake", "--availability", "asleep", "--token", wt, m1addr)
	if out := bad.exited(t); !strings.Contains(out, `--availability: "asleep" is not active, pause or drain`) {
		t.Fatalf("join --availability asleep:\n%s", out)
	}
	e.launch("w3", w3addr, "077", "join", "--listen-addr", w3addr, "--executor", "fake", "--hostname", "w3", "--data-path", "none", "--log-level", "warn", "--availability", "drain", "--token", wt, m1addr)
	e.waitFor("four ready nodes", 60*time.Second, func() (bool, string) {
		out, err := e.ctl("m1", "node", "ls", "-f", "role=worker", "--format", "{{.Hostname}} {{.Status}}")
		return err == nil && strings.Count(out, " Ready\n") == 3, out
	})
	if out, err := e.ctl("m1", "node", "ls", "-f", "name=w3", "--format", "{{.Availability}}"); err != nil || out != "Drain\n" {
		t.Fatalf("w3 joined with --availability drain: %q %v", out, err)
	}
	for node, zone := range map[string]string{"m1": "a", "w1": "a", "w2": "b"} {
		if _, err := e.ctl("m1", "node", "update", "--label-add", "zone="+zone, node); err != nil {
			t.Fatal(err)
		}
	}
	// Every log line of m1 is a JSON object with a level and a message
	// (its "apiaryd: ..." lines are the daemon's own messages, not logs).
	lines := strings.Split(strings.TrimSpace(m1.log.String()), "\n")
	logged := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "apiaryd: ") {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["level"] == nil || rec["msg"] == nil {
			t.Fatalf("--log-format json logged %q (%v)", l, err)
		}
		logged++
	}
	if logged < 2 {
		t.Fatalf("m1 logged %d lines:\n%s", logged, m1.log.String())
	}

	placed := func() map[string]int {
		out, err := e.ctl("m1", "service", "ps", "web", "-f", "desired-state=running", "--format", "{{.Node}}")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, h := range strings.Fields(out) {
			got[h]++
		}
		return got
	}
	create := []string{"--name", "web", "--replicas", "6", "--placement-pref", "spread=node.labels.zone", "--", "/bin/app"}
	plan, err := e.ctl("m1", append([]string{"service", "create", "--dry-run"}, create...)...)
	if err != nil {
		t.Fatal(err)
	}
	want := plannedHosts(t, plan)
	if want["w2"] != 3 || want["m1"]+want["w1"] != 3 || !strings.Contains(plan, "dry run: nothing was changed") {
		t.Fatalf("the spread's plan:\n%s", plan)
	}
	if out, err := e.ctl("m1", "service", "ls", "-q"); err != nil || out != "" {
		t.Fatalf("after the dry run, service ls -q: %q %v", out, err)
	}
	out, err := e.ctl("m1", append([]string{"service", "create", "--detach=false"}, create...)...)
	if err != nil || !strings.Contains(out, "overall progress: 6 out of 6 tasks") || !strings.HasSuffix(out, "verify: Service converged\n") {
		t.Fatalf("service create's progress: %v\n%s", err, out)
	}
	if got := placed(); !stdmaps.Equal(got, want) || got["w3"] != 0 {
		t.Fatalf("placed %v, the dry run planned %v", got, want)
	}

	// An update whose constraint moves the tasks of zone b.
	plan, err = e.ctl("m1", "service", "update", "--dry-run", "--constraint", "node.labels.zone==a", "web")
	if err != nil {
		t.Fatal(err)
	}
	moved := plannedHosts(t, plan)
	if !strings.Contains(plan, "6 to replace") || moved["w2"] != 0 {
		t.Fatalf("the constraint's plan:\n%s", plan)
	}
	if _, err := e.ctl("m1", "service", "update", "--detach=false", "--update-parallelism", "0", "--constraint", "node.labels.zone==a", "web"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the placement the update's dry run planned", 60*time.Second, func() (bool, string) {
		got := placed()
		return stdmaps.Equal(got, moved), fmt.Sprintf("placed %v, planned %v", got, moved)
	})
	// node ps: the tasks on a node, filtered.
	out, err = e.ctl("m1", "node", "ps", "w1", "-f", "desired-state=running", "-q")
	if err != nil || strings.Count(out, "\n") != moved["w1"] {
		t.Fatalf("node ps w1 -q: %v %q, want %d IDs", err, out, moved["w1"])
	}
	if out, err := e.ctl("m1", "node", "ps", "w2", "-f", "desired-state=running", "-q"); err != nil || out != "" {
		t.Fatalf("node ps w2: %v %q, want none running", err, out)
	}
}
