// Package dns is a node's DNS server for service discovery (design §8,
// issue 15), on github.com/miekg/dns. It answers the cluster's names from
// Records, which the caller implements over its endpoint tables (Table is
// the in-memory one), and forwards every other name to the host's
// resolvers.
//
// # Names
//
// Every name can be asked fully qualified in the cluster domain
// (DefaultDomain, "apiary.internal.") or bare:
//
//	web, web.apiary.internal.          the service's VIPs (A, AAAA)
//	                                   a dnsrr service (no VIPs): as tasks.web
//	db-alias                           a network alias: as the service
//	tasks.web                          the addresses of web's healthy tasks,
//	                                   one per node on the host data path
//	web.1.x7k2                         a task: its address (its node's)
//	_http._tcp.web, _80._tcp.web       SRV by port name or target port:
//	                                   one record per task, target the task's
//	                                   name, port its host port; for a
//	                                   service with VIPs, one record for the
//	                                   VIPs (target web.<domain>, the VIP port)
//	_http._tcp.tasks.web               SRV, one per task whatever the mode
//	4.3.2.1.in-addr.arpa (PTR)         the names of a VIP or a task address
//
// SRV targets are task names rather than node names: a task name already
// resolves to exactly the address that reaches the task (its node's on the
// host data path, its own on the overlay one), so SRV keeps its meaning
// when the kernel data path comes, and no "nodes." namespace can collide
// with a service's name. Additional records carry the targets' addresses.
//
// A name with a record of another type (AAAA of an IPv4-only service, A of
// an SRV name) is answered NOERROR with no records, never NXDOMAIN, so a
// client that asks A and AAAA at once keeps the A.
//
// # Views
//
// A querier on network X sees the services on X. On the host data path
// every task shares its node's address, so the caller gives one merged view
// (Config.Records); where a task's source address tells its network,
// Config.View picks the Records of that network per query.
//
// # Known and unknown names
//
// A name inside the domain that the records do not know is NXDOMAIN: no one
// else can know it. A bare name the records do not know ("github.com.",
// "printer.") is forwarded, as Docker's embedded DNS does: the host's
// resolvers may know it, and a client's stub has applied its search
// domains already. Reverse names are answered when the records know the
// address and forwarded otherwise. NXDOMAIN comes without an SOA, so
// clients do not cache it: a service created a moment later resolves at
// once.
//
// # Forwarding
//
// Upstreams are Config.Upstreams or the nameservers of /etc/resolv.conf,
// read at Listen, with this server itself left out (forwarding to
// ourselves would loop). A query goes over the transport it came on (UDP,
// retried over TCP when the UDP answer is truncated; TCP) with a fresh ID,
// to each upstream in turn until one answers other than SERVFAIL or
// REFUSED, each given Config.ForwardTimeout. No upstream answering is
// SERVFAIL; no upstreams at all is REFUSED. At most
// Config.MaxConcurrentForwards queries are forwarded at once; the next is
// SERVFAIL at once. Nothing forwarded is cached here; where the host runs a
// caching resolver (systemd-resolved, dnsmasq), it is the upstream and caches.
//
// # Answers
//
// Address and SRV records come in random order, so that clients taking the
// first spread over the backends, and at most Config.MaxAnswers of them
// (a random subset for a larger service). Over UDP an answer is cut to 512
// bytes, or to the client's EDNS0 buffer capped at Config.MaxUDPSize, with
// TC set so the client asks again over TCP. Every record has Config.TTL
// (DefaultTTL, 2 s: DNS is the live path, see the constant).
package dns
