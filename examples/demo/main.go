// Command demo tells the story of the talk Apiary started from, on a real
// cluster in this process: one manager and three workers running the example
// web service as real OS processes. Each step prints one line with how long
// the cluster took to converge:
//
//	create service app (3 replicas) → scale to 5 → a worker dies and its
//	tasks are rescheduled → rolling update to v2, one task at a time with a
//	delay → scale to 2
//
// It exits 0 only when every step converged; --keep leaves the cluster
// running until interrupted.
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
	fs.DurationVar(&o.updateDelay, "update-delay", time.Second, "delay between the rolling update's tasks")
	fs.DurationVar(&o.stepTimeout, "step-timeout", 60*time.Second, "how long each step may take to converge")
	fs.BoolVar(&o.verbose, "verbose", false, "print the cluster's own logs")
	fs.StringVar(&o.dataDir, "data-dir", "", "where workers keep task records and logs (default: a temporary directory, removed at exit)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.workers < 2 {
		fmt.Fprintln(stderr, "demo: --workers: must be at least 2 (one of them is stopped), got", o.workers)
		return 2
	}
	level := slog.LevelError
	if o.verbose {
		level = slog.LevelInfo
	}
	o.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{opts: o, out: stdout}
	err := d.story(ctx)
	if err == nil && o.keep {
		fmt.Fprintln(stdout, "cluster left running; press Ctrl-C to stop it")
		<-ctx.Done()
	}
	d.teardown()
	if err != nil {
		fmt.Fprintln(stderr, "demo failed:", err)
		return 1
	}
	fmt.Fprintln(stdout, "demo complete: every step converged")
	return 0
}
