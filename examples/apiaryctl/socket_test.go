package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm"
)

// --socket may be relative to the working directory (gRPC would read
// "unix://" + a relative path as an authority).
func TestRelativeSocketPath(t *testing.T) {
	mgr, err := swarm.StartManager(context.Background(), swarm.DefaultManagerConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, "control.sock"))
	if err != nil {
		t.Fatal(err)
	}
	go mgr.ServeControl(l)
	t.Chdir(dir)
	// The commands print to the os.Stdout of newRoot's time.
	stdout := os.Stdout
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = w
	root := newRoot()
	os.Stdout = stdout
	root.SetArgs([]string{"--socket", "control.sock", "service", "ls"})
	err = root.Execute()
	w.Close()
	var b bytes.Buffer
	b.ReadFrom(r)
	if err != nil {
		t.Fatalf("service ls through a relative --socket: %v", err)
	}
	if !strings.Contains(b.String(), "NAME") {
		t.Fatalf("unexpected output %q", b.String())
	}
}
