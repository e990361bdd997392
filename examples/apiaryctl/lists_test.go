package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// --format as docker's: the default table, json, a template per object,
// "table TEMPLATE" with headers named after the fields; a template that
// does not parse or names an unknown field is refused naming the flag.
func TestPrintListFormats(t *testing.T) {
	recs := []record{{"ID": "abc", "Name": "web", "DesiredState": "Running"}, {"ID": "def", "Name": "db", "DesiredState": "Shutdown"}}
	objs := []map[string]string{{"x": "1"}}
	cases := []struct {
		format string
		quiet  bool
		want   string
	}{
		{"", false, "ID    NAME   DESIRED STATE\nabc   web    Running\ndef   db     Shutdown\n"},
		{"table", false, "ID    NAME   DESIRED STATE\nabc   web    Running\ndef   db     Shutdown\n"},
		{"{{.ID}}", false, "abc\ndef\n"},
		{"{{.Name}}: {{upper .DesiredState}}", false, "web: RUNNING\ndb: SHUTDOWN\n"},
		{`table {{.Name}}\t{{.DesiredState}}`, false, "NAME   DESIRED STATE\nweb    Running\ndb     Shutdown\n"},
		{"{{json .Name}}", false, "\"web\"\n\"db\"\n"},
		{"json", false, "[\n    {\n        \"x\": \"1\"\n    }\n]\n"},
		{"{{.Name}}", true, "full-abc\nfull-def\n"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		cl := &cli{out: &out}
		if err := cl.printList(c.format, c.quiet, objs, []string{"full-abc", "full-def"}, recs, []string{"ID", "Name", "DesiredState"}); err != nil {
			t.Fatalf("%q: %v", c.format, err)
		}
		if out.String() != c.want {
			t.Errorf("--format %q -q=%v:\n%q\nwant\n%q", c.format, c.quiet, out.String(), c.want)
		}
	}
	for _, bad := range []string{"{{.Name", "{{.Nope}}", "{{nofunc .ID}}", strings.Repeat("x", maxFormatBytes+1)} {
		var out bytes.Buffer
		err := (&cli{out: &out}).printList(bad, false, objs, nil, recs, []string{"ID"})
		if err == nil || !strings.HasPrefix(err.Error(), "--format") {
			t.Errorf("--format %.20q: %v, want refused naming the flag", bad, err)
		}
	}
}

func TestParseFilters(t *testing.T) {
	f, err := parseFilters([]string{"name=we", "name=db", "label=tier", "label=env=prod", "mode=global"}, serviceFilterKeys...)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"tier": "front", "env": "prod"}
	for _, c := range []struct {
		ok   bool
		what string
	}{
		{f.match("name", true, "web"), "name prefix we"},
		{f.match("name", true, "db"), "second name value"},
		{!f.match("name", true, "api"), "name api refused"},
		{f.match("mode", false, "global"), "mode"},
		{!f.match("mode", false, "global-job"), "mode is exact"},
		{f.match("id", true, "anything"), "a key not given matches"},
		{f.matchLabels("label", labels), "labels"},
		{!f.matchLabels("label", map[string]string{"tier": "x", "env": "dev"}), "label value"},
	} {
		if !c.ok {
			t.Errorf("%s", c.what)
		}
	}
	for _, bad := range [][]string{{"color=red"}, {"name"}, {"=x"}} {
		if _, err := parseFilters(bad, serviceFilterKeys...); err == nil || !strings.HasPrefix(err.Error(), "--filter") {
			t.Errorf("--filter %q: %v", bad, err)
		}
	}
}

// The list commands against a cluster: service ls, service ps, node ls and
// node ps with --filter, -q and --format; service ps says in ERROR why a
// task is pending.
func TestListCommands(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 1})
	dir := c.Members[0].DataDir
	mustCtl(t, dir, "service", "create", "--name", "web", "--replicas", "2", "--label", "tier=front", "--", "/bin/app")
	mustCtl(t, dir, "service", "create", "--name", "agent", "--mode", "global", "--", "/bin/agent")
	mustCtl(t, dir, "service", "create", "-d", "--name", "nowhere", "--constraint", "node.labels.zone==z", "--", "/bin/app")

	if out := mustCtl(t, dir, "service", "ls", "--filter", "name=we", "--format", "{{.Name}} {{.Mode}} {{.Replicas}}"); out != "web replicated 2/2\n" {
		t.Errorf("service ls name=we: %q", out)
	}
	if out := mustCtl(t, dir, "service", "ls", "-f", "mode=global", "-q"); len(strings.TrimSpace(out)) != len(api.NewID()) {
		t.Errorf("service ls -q mode=global: %q", out)
	}
	if out := mustCtl(t, dir, "service", "ls", "-f", "label=tier=front", "--format", "{{.Name}}"); out != "web\n" {
		t.Errorf("service ls label: %q", out)
	}
	out := mustCtl(t, dir, "service", "ls")
	if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, "REPLICAS") || !strings.Contains(out, "agent") {
		t.Errorf("service ls:\n%s", out)
	}
	if _, err := ctl(t, dir, "service", "ls", "-f", "color=red"); err == nil || !strings.Contains(err.Error(), `--filter "color=red": unknown key "color"`) {
		t.Errorf("service ls bad filter: %v", err)
	}

	// Why a task is pending, as docker's ERROR column says it.
	var got string
	testutil.EventuallyWhy(t, 30*time.Second, "the pending task's reason", func() (bool, string) {
		got = mustCtl(t, dir, "service", "ps", "nowhere", "--format", "{{.CurrentState}}|{{.Error}}")
		return strings.Contains(got, `"no suitable node (`) && strings.Contains(got, "node.labels.zone==z"), got
	})
	if !strings.HasPrefix(got, "Pending") {
		t.Errorf("service ps nowhere: %q", got)
	}
	if out := mustCtl(t, dir, "service", "ps", "web", "agent", "-f", "desired-state=running", "-q"); strings.Count(out, "\n") != 4 {
		t.Errorf("service ps web agent -q: %q, want 4 IDs", out)
	}

	if out := mustCtl(t, dir, "node", "ls", "-f", "role=manager", "--format", "{{.Hostname}} {{.Self}} {{.Status}}"); out != "manager-1 true Ready\n" {
		t.Errorf("node ls role=manager: %q", out)
	}
	if out := mustCtl(t, dir, "node", "ls", "-q"); strings.Count(out, "\n") != 2 {
		t.Errorf("node ls -q: %q", out)
	}
	// Inspect takes a template per object too, as docker inspect's,
	// its fields by their JSON names; a table template or an unknown
	// field is refused naming the flag.
	if out := mustCtl(t, dir, "service", "inspect", "web", "agent", "--format", "{{.Spec.Name}} {{json .Spec.Labels}}"); out != "web {\"tier\":\"front\"}\nagent null\n" {
		t.Errorf("service inspect --format: %q", out)
	}
	if out := mustCtl(t, dir, "swarm", "inspect", "--format", "{{.Spec.Name}}"); strings.TrimSpace(out) == "" || strings.Contains(out, "{") {
		t.Errorf("swarm inspect --format: %q", out)
	}
	if out := mustCtl(t, dir, "swarm", "inspect"); !strings.HasPrefix(out, "{") {
		t.Errorf("swarm inspect is one JSON object, got %.40q", out)
	}
	if out := mustCtl(t, dir, "service", "inspect", "web"); !strings.HasPrefix(out, "[") {
		t.Errorf("service inspect is a JSON array, got %.40q", out)
	}
	for _, bad := range []string{"{{.Spec.Nope}}", "table {{.ID}}"} {
		if _, err := ctl(t, dir, "service", "inspect", "web", "--format", bad); err == nil || !strings.Contains(err.Error(), "--format") {
			t.Errorf("service inspect --format %q: %v, want refused naming the flag", bad, err)
		}
	}
	// The other list commands take templates too, their columns as fields.
	mustCtl(t, dir, "network", "create", "--label", "tier=db", "backend")
	if out := mustCtl(t, dir, "network", "ls", "-f", "label=tier=db", "--format", "{{.Name}} {{.Driver}} {{len .ID}}"); out != "backend overlay 12\n" {
		t.Errorf("network ls --format: %q", out)
	}
	// node ps: this node by default, or those named; filters by name.
	self := mustCtl(t, dir, "node", "ps", "--format", "{{.Node}}")
	if self == "" || strings.Trim(strings.ReplaceAll(self, "manager-1\n", ""), "\n") != "" {
		t.Errorf("node ps (self): %q", self)
	}
	var tasks []*api.Task
	if err := json.Unmarshal([]byte(mustCtl(t, dir, "node", "ps", "worker-1", "-f", "name=agent", "--format", "json")), &tasks); err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || !strings.HasPrefix(tasks[0].Name, "agent.") {
		t.Errorf("node ps worker-1 name=agent: %+v", tasks)
	}
}
