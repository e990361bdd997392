package main

import (
	"fmt"
	"slices"
	"testing"
)

func TestListenerHosts(t *testing.T) {
	ifaces := func() []string { return []string{"10.0.0.5", "127.0.0.1", "fd00::5"} }
	many := func() []string {
		var out []string
		for i := range 40 {
			out = append(out, fmt.Sprintf("10.0.1.%d", i))
		}
		return out
	}
	for _, tc := range []struct {
		hostname string
		addrs    []string
		ifaces   func() []string
		want     []string
	}{
		{"node-1", []string{"127.0.7.1:2376", "127.0.7.1:4242"}, ifaces, []string{"127.0.7.1", "localhost", "node-1"}},
		{"node-1", []string{"0.0.0.0:2376", "10.0.0.5:4242"}, ifaces, []string{"127.0.0.1", "localhost", "10.0.0.5", "fd00::5", "node-1"}},
		{"node-1", []string{"[::]:2376", "mgr.example:4242"}, ifaces, []string{"127.0.0.1", "localhost", "10.0.0.5", "fd00::5", "mgr.example", "node-1"}},
		{"", []string{"192.0.2.1:2376", ""}, ifaces, []string{"192.0.2.1"}},
	} {
		if got := listenerHosts(tc.hostname, tc.addrs, tc.ifaces); !slices.Equal(got, tc.want) {
			t.Errorf("listenerHosts(%q, %q) = %q, want %q", tc.hostname, tc.addrs, got, tc.want)
		}
	}
	if got := listenerHosts("node-1", []string{"0.0.0.0:2376"}, many); len(got) != 16 {
		t.Errorf("%d hosts from 40 interfaces, want the bound 16", len(got))
	}
}
