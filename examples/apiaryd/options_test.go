package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runOnlyFlags are the flags of run that are not node options: the data
// dir (where the options are), one-off actions, and --heartbeat-period,
// accepted and ignored since the period became the cluster's. Any other
// flag of run must be a node option, saved by init and join.
var runOnlyFlags = map[string]bool{"data-dir": true, "force-new-cluster": true, "help": true, "heartbeat-period": true}

func command(t *testing.T, name string) *cobra.Command {
	t.Helper()
	c, _, err := newRoot().Find([]string{name})
	if err != nil || c.Name() != name {
		t.Fatalf("no %s command: %v", name, err)
	}
	c.InitDefaultHelpFlag()
	return c
}

// sampleArgs gives every node option of flags a value unlike its default
// (by the flag's type, so that a new option needs nothing here), as
// command-line arguments, and the values as flagValue reports them.
func sampleArgs(t *testing.T, flags *pflag.FlagSet, tag string) ([]string, map[string]any) {
	t.Helper()
	var args []string
	want := map[string]any{}
	visitNodeFlags(flags, func(f *pflag.Flag) {
		switch f.Value.Type() {
		case "string":
			v := tag + "-" + f.Name
			args = append(args, "--"+f.Name+"="+v)
			want[f.Name] = v
		case "stringArray":
			a, b := f.Name+"="+tag+"1", f.Name+"="+tag+"2"
			args = append(args, "--"+f.Name+"="+a, "--"+f.Name+"="+b)
			want[f.Name] = []string{a, b}
		case "duration":
			v := (time.Duration(len(tag)) * 250 * time.Millisecond).String()
			args = append(args, "--"+f.Name+"="+v)
			want[f.Name] = v
		case "bool":
			// init sets each switch away from its default, and an
			// override sets it back, so that both show.
			v := strconv.FormatBool((f.DefValue == "true") == (tag != "init"))
			args = append(args, "--"+f.Name+"="+v)
			want[f.Name] = v
		default:
			t.Fatalf("node option --%s has type %s: teach sampleArgs a value for it", f.Name, f.Value.Type())
		}
	})
	return args, want
}

func values(flags *pflag.FlagSet) map[string]any {
	got := map[string]any{}
	visitNodeFlags(flags, func(f *pflag.Flag) { got[f.Name] = flagValue(f) })
	return got
}

// Every flag of run is a node option (or a run-only flag named above),
// and every node option is a flag of init and join too: what init and
// join are given, run can be given.
func TestRunFlagsAreNodeOptions(t *testing.T) {
	run, initCmd, join := command(t, "run"), command(t, "init"), command(t, "join")
	n := 0
	run.Flags().VisitAll(func(f *pflag.Flag) {
		if runOnlyFlags[f.Name] {
			return
		}
		if f.Annotations[nodeFlagAnnotation] == nil {
			t.Errorf("run --%s is neither a node option (saved by init and join) nor a run-only flag", f.Name)
		}
		for _, c := range []*cobra.Command{initCmd, join} {
			g := c.Flags().Lookup(f.Name)
			if g == nil || g.Annotations[nodeFlagAnnotation] == nil || g.Value.Type() != f.Value.Type() || g.DefValue != f.DefValue {
				t.Errorf("run --%s is not the same node option on %s: %+v", f.Name, c.Name(), g)
			}
		}
		n++
	})
	run.InheritedFlags().VisitAll(func(f *pflag.Flag) {
		if !runOnlyFlags[f.Name] {
			t.Errorf("run inherits --%s, which is not saved", f.Name)
		}
	})
	if n == 0 {
		t.Fatal("run has no node options")
	}
}

// What init is given is saved, whole, and a run given nothing gets every
// value back; a flag given to run overrides the saved value, is saved in
// its place, and is reported.
func TestNodeOptionsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	initCmd := command(t, "init")
	args, want := sampleArgs(t, initCmd.Flags(), "init")
	if err := initCmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	if err := saveNodeOptions(dir, initCmd.Flags()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, optionsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", optionsFile, fi.Mode().Perm())
	}

	run := command(t, "run")
	if err := run.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	notes, err := loadNodeOptions(dir, run.Flags())
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 0 {
		t.Errorf("notes for a plain run: %+v", notes)
	}
	if got := values(run.Flags()); !reflect.DeepEqual(got, want) {
		t.Errorf("run got\n%v\nwant what init was given\n%v", got, want)
	}

	// Each option overridden on run, one at a time.
	visitNodeFlags(run.Flags(), func(f *pflag.Flag) {
		over := command(t, "run")
		all, vals := sampleArgs(t, over.Flags(), "override")
		var mine []string
		for _, a := range all {
			if strings.HasPrefix(a, "--"+f.Name+"=") {
				mine = append(mine, a)
			}
		}
		if err := over.ParseFlags(mine); err != nil {
			t.Fatal(err)
		}
		notes, err := loadNodeOptions(dir, over.Flags())
		if err != nil {
			t.Fatal(err)
		}
		if len(notes) != 1 || notes[0].flag != f.Name || !strings.Contains(notes[0].msg, "overrides") {
			t.Errorf("--%s on run: notes %+v, want one override", f.Name, notes)
		}
		got := values(over.Flags())
		if !reflect.DeepEqual(got[f.Name], vals[f.Name]) {
			t.Errorf("--%s on run: value %v, want %v", f.Name, got[f.Name], vals[f.Name])
		}
		for name, v := range want {
			if name != f.Name && !reflect.DeepEqual(got[name], v) {
				t.Errorf("--%s on run changed --%s to %v", f.Name, name, got[name])
			}
		}
		if err := saveNodeOptions(dir, over.Flags()); err != nil {
			t.Fatal(err)
		}
		want[f.Name] = vals[f.Name]
		// The next plain run keeps the override.
		again := command(t, "run")
		if _, err := loadNodeOptions(dir, again.Flags()); err != nil {
			t.Fatal(err)
		}
		if got := values(again.Flags()); !reflect.DeepEqual(got, want) {
			t.Errorf("plain run after --%s: %v, want %v", f.Name, got, want)
		}
	})
}

// A saved file from an older apiaryd (an option missing, another unknown)
// is used for what it has, and the log says what it lacks.
func TestNodeOptionsFromAnOlderApiaryd(t *testing.T) {
	dir := t.TempDir()
	b, _ := json.Marshal(map[string]any{"executor": "fake", "colour": "blue", "heartbeat-period": "300ms"})
	if err := os.WriteFile(filepath.Join(dir, optionsFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	run := command(t, "run")
	notes, err := loadNodeOptions(dir, run.Flags())
	if err != nil {
		t.Fatal(err)
	}
	if got := run.Flags().Lookup("executor").Value.String(); got != "fake" {
		t.Errorf("executor %q, want the saved fake", got)
	}
	said := map[string]string{}
	for _, n := range notes {
		said[n.flag] = n.msg
	}
	// --heartbeat-period was a node option before it became the
	// cluster's: a saved one is ignored, saying so.
	if !strings.Contains(said["colour"], "unknown") || !strings.Contains(said["heartbeat-period"], "ignored") || !strings.Contains(said["hostname"], "not saved") {
		t.Errorf("notes %+v", notes)
	}
	// No file at all: a note, and the flags as given.
	if notes, err := loadNodeOptions(t.TempDir(), command(t, "run").Flags()); err != nil || len(notes) != 1 || !strings.Contains(notes[0].msg, "no saved node options") {
		t.Errorf("no file: %+v %v", notes, err)
	}
	// A saved value that does not parse is an error naming the option.
	if err := os.WriteFile(filepath.Join(dir, optionsFile), []byte(`{"label": "soon"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadNodeOptions(dir, command(t, "run").Flags()); err == nil || !strings.Contains(err.Error(), "--label") {
		t.Errorf("bad saved value: %v", err)
	}
}

// The data path is host or none; anything else is refused naming the flag.
func TestDataPathOption(t *testing.T) {
	for path, want := range map[string]string{"host": "host", "none": ""} {
		o := nodeOptions{dataPath: path, gossipAddr: "127.0.0.1:0"}
		m, err := o.meshConfig()
		if err != nil || m.DataPath != want || (want != "" && m.GossipAddr != "127.0.0.1:0") {
			t.Errorf("--data-path %s: %+v, %v", path, m, err)
		}
	}
	o := nodeOptions{dataPath: "overlay"}
	if _, err := o.meshConfig(); err == nil || !strings.Contains(err.Error(), "--data-path") {
		t.Errorf("--data-path overlay: %v, want an error naming the flag", err)
	}
	for _, v := range []string{"", "range", "loopback"} {
		o := nodeOptions{dataPath: "host", meshVIPs: v}
		if m, err := o.meshConfig(); err != nil || m.VIPs != v {
			t.Errorf("--mesh-vips %q: %+v, %v", v, m, err)
		}
	}
	o = nodeOptions{dataPath: "host", meshVIPs: "anycast"}
	if _, err := o.meshConfig(); err == nil || !strings.Contains(err.Error(), "--mesh-vips") {
		t.Errorf("--mesh-vips anycast: %v, want an error naming the flag", err)
	}
}
