package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
)

// Where the demo's nodes live. They share this machine, each on a loopback
// address of its own as separate machines would each have theirs:
// 127.0.B.1 is the manager, 127.0.B.2 and up the workers. B is the first
// block of firstBlock..lastBlock where no other program holds the mesh's
// default ports, so two demos at once take two blocks. The blocks are
// clear of what else this repository puts on loopback: 127.0.0.1-5 (the
// apiaryd end-to-end tests), 127.0.10-209.x (swarmtest) and the host VIP
// range 127.100.0.0/16 (api.HostVIPRange).
const (
	firstBlock = 240
	lastBlock  = 249
	// maxNodes is how many nodes a block holds (127.0.B.1 to .254).
	maxNodes = 254
)

// The ports a node takes on its address: the demo's defaults, each
// replaced by one the kernel picks when it is taken.
const (
	// listenPort is the node's gRPC port (the README's apiaryd examples
	// use it too).
	listenPort = 4242
	// gossipPort and dnsPort are the mesh's defaults (gossip.DefaultPort,
	// the port of dns.DefaultAddr), repeated here so that a block is
	// judged free by the ports its nodes will really ask for.
	gossipPort = 7946
	dnsPort    = 8653
	// maxPortTries bounds the search upward from the wanted published
	// port when it is taken.
	maxPortTries = 200
)

// pickHosts returns n loopback addresses in the first free block.
func pickHosts(n int) ([]netip.Addr, error) {
	if n < 1 || n > maxNodes {
		return nil, fmt.Errorf("%d nodes: a block of loopback addresses holds 1 to %d", n, maxNodes)
	}
	var usable [][]netip.Addr // blocks whose addresses bind, busy or not
	var lastErr error
	for b := firstBlock; b <= lastBlock; b++ {
		hosts := block(b, n)
		if err := bindable(hosts); err != nil {
			lastErr = err
			continue
		}
		if blockFree(hosts) {
			return hosts, nil
		}
		usable = append(usable, hosts)
	}
	if len(usable) > 0 {
		// Every block has someone on a default port: the first will do,
		// with the kernel's ports where the defaults are taken.
		return usable[0], nil
	}
	hint := ""
	if runtime.GOOS == "darwin" {
		hint = fmt.Sprintf(" (macOS answers only on 127.0.0.1 unless told: sudo ifconfig lo0 alias 127.0.%d.N up, for N = 1 to %d)", firstBlock, n)
	}
	return nil, fmt.Errorf("no loopback addresses for the nodes: %w%s", lastErr, hint)
}

func block(b, n int) []netip.Addr {
	hosts := make([]netip.Addr, n)
	for i := range hosts {
		hosts[i] = netip.AddrFrom4([4]byte{127, 0, byte(b), byte(i + 1)})
	}
	return hosts
}

// bindable says whether this machine lets a program listen on each host.
func bindable(hosts []netip.Addr) error {
	for _, h := range hosts {
		l, err := net.Listen("tcp", net.JoinHostPort(h.String(), "0"))
		if err != nil {
			return err
		}
		l.Close()
	}
	return nil
}

// blockFree says whether no one holds the node or mesh ports on hosts:
// another demo (or an apiaryd) is there otherwise.
func blockFree(hosts []netip.Addr) bool {
	for _, h := range hosts {
		for _, p := range []int{listenPort, gossipPort, dnsPort} {
			if !free(h, p, false) {
				return false
			}
		}
	}
	return true
}

// free says whether port is free on host for TCP (and UDP, with udp too).
// It is free now, not when the node binds it; a program that takes it in
// between makes the node's start fail and say so.
func free(host netip.Addr, port int, udp bool) bool {
	addr := net.JoinHostPort(host.String(), strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	if udp {
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		u.Close()
	}
	return true
}

// portOrZero is host:port when that is free (TCP and UDP), else host:0
// for the node to take any.
func portOrZero(host netip.Addr, port int) string {
	if free(host, port, true) {
		return net.JoinHostPort(host.String(), strconv.Itoa(port))
	}
	return net.JoinHostPort(host.String(), "0")
}

// listenAddr is host:listenPort when free, else a port the kernel picks
// (the node needs a concrete one: the others dial it).
func listenAddr(host netip.Addr) (string, error) {
	if free(host, listenPort, false) {
		return net.JoinHostPort(host.String(), strconv.Itoa(listenPort)), nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host.String(), "0"))
	if err != nil {
		return "", fmt.Errorf("listen address on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// errNoPort says no port from the wanted one up was free on every host.
var errNoPort = errors.New("no free port")

// freeOnAll returns want if it is free on every host, else the first port
// above it that is, trying at most maxPortTries.
func freeOnAll(hosts []netip.Addr, want int) (int, error) {
	for p := want; p < want+maxPortTries && p <= 65535; p++ {
		ok := true
		for _, h := range hosts {
			if !free(h, p, false) {
				ok = false
				break
			}
		}
		if ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w from %d to %d on %v", errNoPort, want, want+maxPortTries-1, hosts)
}
