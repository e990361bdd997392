// Package balancer spreads the connections of a virtual service over its
// backends: the load balancing of the routing mesh (design §8, issue 15).
//
// A Balancer holds virtual services. Each is a Frontend (address, port,
// protocol) with Options (scheduler, traffic policy, PROXY protocol,
// connection cap) and a list of Backends (address, node, healthy, local).
// The interface is what the userspace proxy here and the kernel data paths
// to come (IPVS, nftables DNAT) can all do. Proxy is the userspace
// implementation, a TCP and UDP proxy that needs no privileges and runs on
// any operating system; Recorder is the in-memory one, for tests of the code
// that drives a balancer; package balancertest holds the contract both pass.
//
// # Listening
//
// A service listens on its frontend with SO_REUSEADDR and SO_REUSEPORT (on
// Linux, macOS and the BSDs), so every node's balancer listens on a
// service's VIP and port even when several nodes share one machine, and any
// of them serves a client correctly. A port held by another program fails
// with a *BindError naming the frontend. On Windows a frontend has one
// listener.
//
// # Choosing a backend
//
// Only backends that are listed and Healthy get new connections.
// RoundRobin takes them in turn; LeastConnections takes the one with the
// fewest open connections (counting connects in progress, so a burst
// spreads), ties in turn. Under TrafficCluster every healthy backend is
// eligible. Under TrafficLocal the healthy backends on the receiving node
// are preferred, and when none is healthy every healthy backend is
// eligible. Kubernetes' Local policy drops the connection instead, and
// relies on an external load balancer that health-checks each node to
// steer clients away from nodes without a local endpoint. Apiary promises
// what Swarm's ingress promises, that a published port answers on every
// node, and has no such load balancer in front: dropping would turn every
// node without a task into a black hole. So the policy keeps the client's
// address (no second hop) whenever it can, and otherwise still answers; a
// service that must always see the client's address also sets ProxyV2.
//
// # TCP
//
// A connection is handed to a backend by dialling it (Config.ConnectTimeout
// per attempt). A connect that fails or times out is retried on the next
// eligible backend, up to MaxConnectAttempts, so the client sees a failure
// only when no healthy backend accepts. With ProxyV2 the balancer then
// writes a PROXY protocol version 2 header (package proxyproto) carrying the
// client's address and the frontend address it reached. Bytes are then
// copied both ways between the two *net.TCPConn: a message (a read smaller
// than copyBuf) with a read and a write through a pooled buffer, a stream
// (a read that fills it) with ReadFrom a megabyte at a time, which Linux
// serves with splice(2), without copying through user space. Nothing wraps
// the connections, which would force a buffered copy; an idle connection
// holds no buffer and no pipe (copy.go says why). A side that ends cleanly
// half-closes the other (CloseWrite) and the other direction goes on; an
// error on either side closes both. There is no idle timeout: idle
// long-lived connections (databases, websockets) stay; TCP keepalives
// (Config.KeepAlive) find dead peers.
//
// # UDP
//
// The datagrams of one client address are a flow, sent to the backend
// chosen for its first datagram through a socket of their own; the
// backend's answers go back from the frontend's socket. A flow ends after
// Config.UDPIdleTimeout without a datagram either way. A service has at
// most MaxConnections flows (Config.MaxUDPFlows by default): a datagram
// that would make one more is dropped and counted as refused, as a full
// conntrack table does. Answers leave from the frontend's socket, so a UDP
// frontend should name an address rather than the wildcard: from 0.0.0.0
// the system picks the source address of an answer, which may not be the
// one the client wrote to.
//
// # Draining
//
// A backend removed by SetBackends, or no longer healthy, gets no new
// connections; its open connections (and UDP flows) stay until they end or
// until Config.DrainTimeout has passed, when they are closed. A backend
// listed healthy again before then keeps them. RemoveService closes a TCP
// service's listener at once and drains its connections the same way; a
// UDP service's flows end with its socket, which carried their answers.
// Close ends everything at once.
//
// # Counters
//
// Stats returns per service and per backend the open and total connections,
// the refused and failed ones, and the bytes each way. TCP byte counters
// advance after each message and every copyChunk bytes of a stream.
package balancer
