package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// --debug-addr is refused before anything starts unless it is a loopback
// HOST:PORT, naming the flag and why.
func TestDebugAddrLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:6060", "127.8.0.1:0", "[::1]:6060", "localhost:6060"} {
		o := nodeOptions{executor: "fake", logLevel: "info", debugAddr: ok}
		if _, err := o.check(); err != nil {
			t.Errorf("--debug-addr %s: %v", ok, err)
		}
	}
	for addr, want := range map[string]string{
		"0.0.0.0:6060":  "loopback address only",
		"10.1.2.3:6060": "loopback address only",
		"[::]:6060":     "loopback address only",
		"example:6060":  "loopback address only",
		"127.0.0.1":     "missing port",
	} {
		o := nodeOptions{executor: "fake", logLevel: "info", debugAddr: addr}
		_, err := o.check()
		if err == nil || !strings.Contains(err.Error(), "--debug-addr") || !strings.Contains(err.Error(), want) {
			t.Errorf("--debug-addr %s: %v, want an error naming the flag and %q", addr, err, want)
		}
	}
}

// The listener serves the profiler's index and a heap profile, and stops.
func TestDebugListenerServesProfiles(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop, err := serveDebug(context.Background(), addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/debug/pprof/": "heap", "/debug/pprof/heap?debug=1": "heap profile"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body without %q", path, resp.StatusCode, want)
		}
	}
	stop()
	if _, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Error("the listener still answers after stop")
	}
	if stop, err := serveDebug(context.Background(), "", nil); err != nil {
		t.Errorf(`serveDebug(""): %v`, err)
	} else {
		stop()
	}
}
