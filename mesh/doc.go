// Package mesh holds the routing mesh of design §8: every task reachable by
// name, every published port answering on every node. Its parts, each
// behind a small interface with an in-memory twin:
//
//   - mesh/gossip: memberlist among all nodes, encrypted with the
//     managers' keys (rotated), carrying per-network tables whose entries
//     each node signs with its certificate's key and every receiver checks
//     against the cluster CA;
//   - mesh/endpoint: a node's runtime that publishes the tasks it runs in
//     the endpoint table and turns everyone's entries into balancer
//     frontends and DNS records (a pure function of the entries);
//   - mesh/dns: the DNS server per node (service → VIP, tasks.<service>,
//     task names, SRV, aliases; NXDOMAIN in the cluster's domain, the rest
//     forwarded);
//   - mesh/balancer: the Balancer interface and its userspace TCP/UDP
//     proxy (round robin, least connections, draining, PROXY protocol v2,
//     the local traffic policy).
//
// The swarm package wires them into a node (swarm.MeshConfig); part 1 is
// the host data path, where tasks share the node's network. The kernel
// data path (a namespace per task, VXLAN, IPVS or nftables) is later work.
package mesh
