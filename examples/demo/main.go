// Command demo tells the story of the talk Apiary started from, on a real
// cluster in this process: one manager and three workers, each a swarm.Node
// on its own loopback address (127.0.B.1 the manager, 127.0.B.2-4 the
// workers, B the first of 240-249 free: hosts.go) with the routing mesh on
// the host data path, running the example web app as real OS processes.
// Each step prints one line with how long the cluster took to converge:
//
//	network create app; service create db (on network app) → service
//	create app (3 replicas, on network app, published 8080:80) → scale to
//	5 → a worker dies and its tasks are rescheduled → rolling update to
//	v2, one task at a time with a delay → scale to 2
//
// and, from the third step on, the routing mesh's checks below it: port
// 8080 answers on every live node, from exactly app's running replicas,
// and app reaches db by name (its node's DNS server, then db's virtual
// IP), asked through every node's published port.
//
// It exits 0 only when every step converged and every mesh check passed:
// every live node reaching exactly app's running replicas within the
// step's timeout (gossip brings a change everywhere in well under a
// second here); --keep leaves the cluster running until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/apiary-io/apiary/examples/webapp"
)

func main() {
	// The demo's tasks are this very binary re-executed as the web app, so
	// `go run ./examples/demo` needs nothing else built.
	if len(os.Args) > 1 && os.Args[1] == "webapp" {
		os.Exit(webapp.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.BoolVar(&o.keep, "keep", false, "leave the cluster running after the story, until interrupted")
	fs.IntVar(&o.workers, "workers", 3, "number of workers")
	fs.IntVar(&o.port, "port", 8080, "the port app is published on (the next free one when it is taken)")
	fs.DurationVar(&o.updateDelay, "update-delay", time.Second, "delay between the rolling update's tasks")
	fs.DurationVar(&o.stepTimeout, "step-timeout", 60*time.Second, "how long each step may take to converge")
	fs.BoolVar(&o.verbose, "verbose", false, "print the cluster's own logs")
	fs.StringVar(&o.dataDir, "data-dir", "", "where the nodes keep their data: certificates, raft log, task records and logs (default: a temporary directory, removed at exit)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.workers < 2 || o.workers >= maxNodes {
		fmt.Fprintf(stderr, "demo: --workers: must be at least 2 (one of them is stopped) and below %d (one loopback block), got %d\n", maxNodes, o.workers)
		return 2
	}
	if o.port < 1 || o.port > 65535 {
		fmt.Fprintln(stderr, "demo: --port: must be 1 to 65535, got", o.port)
		return 2
	}
	o.level = new(slog.LevelVar)
	o.level.Set(slog.LevelError)
	if o.verbose {
		o.level.Set(slog.LevelInfo)
	}
	o.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{opts: o, out: stdout}
	err := d.story(ctx)
	if err == nil && o.keep {
		fmt.Fprintln(stdout, d.keepHint())
		<-ctx.Done()
	}
	d.teardown()
	if err != nil {
		fmt.Fprintln(stderr, "demo failed:", err)
		return 1
	}
	if d.lagged > 0 {
		fmt.Fprintf(stdout, "demo complete: every step converged; the routing mesh was behind on some node in %d of its checks (above)\n", d.lagged)
		return 0
	}
	fmt.Fprintln(stdout, "demo complete: every step converged")
	return 0
}
