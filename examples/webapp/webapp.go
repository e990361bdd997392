// Package webapp is the small HTTP server the examples run as a service: it
// answers who it is (service, slot, version, node), has a health endpoint,
// and calls other services by name (/call), which is how the demo shows a
// task reaching another service through the node's DNS. It stops
// gracefully on SIGTERM, as a well-behaved task should. Run it as its own
// binary (examples/webapp/cmd/webapp) or from a program that re-executes
// itself (the demo does).
//
// It listens where the flags say, else where its environment says: on the
// host data path the agent gives every task APIARY_HOST (its node's
// address) and PORT (its first host port), so a task needs no flags.
// It is standard library only.
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return run(ctx, args, os.Getenv, stdout, stderr)
}

// run is Main with its context and environment given.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("webapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", listenAddr(getenv), "address to listen on (default: $WEBAPP_LISTEN, else $APIARY_HOST:$PORT, else 127.0.0.1:0)")
	version := fs.String("version", envOr(getenv, "APP_VERSION", "v1"), "version to report")
	dns := fs.String("dns", getenv(EnvDNS), "DNS server (HOST:PORT) /call resolves names through; empty: the system's resolver")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serve(ctx, *listen, Handler(*version, *dns), Identity(*version), stdout); err != nil {
		fmt.Fprintln(stderr, "webapp:", err)
		return 1
	}
	return 0
}

// Environment variables the agent sets on the host data path.
const (
	EnvHost = "APIARY_HOST"
	EnvPort = "PORT"
	EnvDNS  = "APIARY_DNS"
)

// listenAddr is where to listen without a -listen flag: WEBAPP_LISTEN,
// else APIARY_HOST:PORT (every interface when only PORT is set, the PORT
// convention), else a free port on loopback.
func listenAddr(getenv func(string) string) string {
	if a := getenv("WEBAPP_LISTEN"); a != "" {
		return a
	}
	if p := getenv(EnvPort); p != "" {
		return net.JoinHostPort(getenv(EnvHost), p)
	}
	return "127.0.0.1:0"
}

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}

// Identity is what the server says about itself, from the environment the
// agent gives every task.
func Identity(version string) string {
	name := envOr(os.Getenv, "APIARY_SERVICE_NAME", "webapp")
	slot := envOr(os.Getenv, "APIARY_TASK_SLOT", "0")
	node := envOr(os.Getenv, "APIARY_NODE_ID", "local")
	if len(node) > 12 {
		node = node[:12]
	}
	return fmt.Sprintf("%s.%s %s on node %s", name, slot, version, node)
}

// Handler serves the app's endpoints: / (who it is), /health and /call
// (call.go), resolving names through the DNS server at dns, or the
// system's resolver when dns is empty.
func Handler(version, dns string) http.Handler {
	who := Identity(version)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", who)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/call", newCaller(dns))
	return mux
}

// Serve answers on addr until ctx ends, then shuts down gracefully. It
// prints "listening on http://ADDR" once it accepts connections. /call
// resolves names through $APIARY_DNS.
func Serve(ctx context.Context, addr, version string, stdout io.Writer) error {
	return serve(ctx, addr, Handler(version, os.Getenv(EnvDNS)), Identity(version), stdout)
}

func serve(ctx context.Context, addr string, h http.Handler, who string, stdout io.Writer) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
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
