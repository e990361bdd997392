package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"slices"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
	"github.com/apiary-io/apiary/swarm/dockerapi"
)

// dockerTLS is the TCP listener's TLS configuration: a certificate of
// the cluster CA, asked for through the node's control socket, naming
// the addresses clients dial and the hostname; renewed until ctx ends
// (dockerapi.ServerTLS). On a worker, whose control socket cannot issue,
// handshakes fail until it is promoted.
func dockerTLS(ctx context.Context, cl *client.Client, hostname string, addrs []string, log *slog.Logger) (*tls.Config, error) {
	cfg := dockerapi.DefaultTLSConfig()
	cfg.Issuer, cfg.Logger = cl, log
	cfg.Hosts = listenerHosts(hostname, addrs, interfaceIPs)
	st, err := dockerapi.NewServerTLS(cfg)
	if err != nil {
		return nil, err
	}
	switch err := st.Renew(ctx); {
	case errors.Is(err, control.ErrNotManager):
		log.Warn("--docker-api-addr: this node is a worker; the listener gets its certificate once it is a manager", "err", err)
	case err != nil:
		return nil, err
	}
	go st.Run(ctx)
	return st.Config(), nil
}

// listenerHosts are the SANs of the listener's certificate: the hosts of
// addrs (the listen and advertise addresses; an unspecified one, 0.0.0.0
// or ::, stands for every address of the machine's interfaces), "localhost"
// and 127.0.0.1 with a loopback or unspecified one, and the hostname; at
// most pki.MaxCertificateHosts, in that order.
func listenerHosts(hostname string, addrs []string, ifaces func() []string) []string {
	var hosts []string
	add := func(h string) {
		if h != "" && !slices.Contains(hosts, h) && len(hosts) < pki.MaxCertificateHosts {
			hosts = append(hosts, h)
		}
	}
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			h = a
		}
		ip := net.ParseIP(h)
		switch {
		case ip != nil && ip.IsUnspecified():
			add("127.0.0.1")
			add("localhost")
			for _, i := range ifaces() {
				add(i)
			}
		case ip != nil && ip.IsLoopback():
			add(ip.String())
			add("localhost")
		default:
			add(h)
		}
	}
	add(hostname)
	return hosts
}

// interfaceIPs are the machine's unicast addresses but link-local ones,
// which no client dials by IP.
func interfaceIPs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() && !n.IP.IsMulticast() {
			out = append(out, n.IP.String())
		}
	}
	return out
}
