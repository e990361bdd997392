package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"
)

// The debug listener (--debug-addr) serves Go's profiler, net/http/pprof,
// as swarmd's --listen-debug does: CPU, heap, allocation, goroutine and
// mutex profiles and execution traces of a running daemon, which is how a
// slow or growing manager is diagnosed without restarting it.
//
// It answers on loopback only. The profiler has no authentication, and
// what it serves is not harmless: /debug/pprof/cmdline is the daemon's
// command line, a join token included, and a heap profile names every
// allocation site. A remote operator reaches it through ssh.

// checkDebugAddr refuses an address that is not HOST:PORT with HOST a
// loopback IP or "localhost".
func checkDebugAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--debug-addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("--debug-addr %q: the profiler is served on a loopback address only (127.0.0.0/8, ::1 or localhost): it has no authentication and its command line holds the join token", addr)
	}
	return nil
}

// serveDebug starts the debug listener on addr ("" starts nothing) and
// returns what stops it.
func serveDebug(ctx context.Context, addr string, log *slog.Logger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	if err := checkDebugAddr(addr); err != nil {
		return nil, err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener", "addr", addr, "err", err)
		}
	}()
	log.Info("debug listener: Go's profiler at /debug/pprof/", "addr", ln.Addr().String())
	return func() {
		srv.Close()
		<-done
	}, nil
}
