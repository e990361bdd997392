// Package webapp is the small HTTP server the examples run as a service: it
// answers who it is (service, slot, version, node) and has a health
// endpoint. It stops gracefully on SIGTERM, as a well-behaved task should.
// Run it as its own binary (examples/webapp/cmd/webapp) or from a program
// that re-executes itself (the demo does).
package webapp

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main runs the server with command-line args (without the program name)
// and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("webapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", envOr("WEBAPP_LISTEN", "127.0.0.1:0"), "address to listen on")
	version := fs.String("version", envOr("APP_VERSION", "v1"), "version to report")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := Serve(ctx, *listen, *version, stdout); err != nil {
		fmt.Fprintln(stderr, "webapp:", err)
		return 1
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Identity is what the server says about itself, from the environment the
// agent gives every task.
func Identity(version string) string {
	name := envOr("APIARY_SERVICE_NAME", "webapp")
	slot := envOr("APIARY_TASK_SLOT", "0")
	node := envOr("APIARY_NODE_ID", "local")
	if len(node) > 12 {
		node = node[:12]
	}
	return fmt.Sprintf("%s.%s %s on node %s", name, slot, version, node)
}

// Serve answers on addr until ctx ends, then shuts down gracefully. It
// prints "listening on http://ADDR" once it accepts connections.
func Serve(ctx context.Context, addr, version string, stdout io.Writer) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	who := Identity(version)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", who)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "%s listening on http://%s\n", who, l.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintf(stdout, "%s stopped\n", who)
	return nil
}
