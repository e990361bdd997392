// Package mesh will hold the routing mesh of design §8: gossip among nodes
// (memberlist, encrypted, keys rotated), DNS service discovery, a virtual-IP
// load balancer per service (kernel IPVS where available, a userspace proxy
// elsewhere) and ingress on every node for published ports.
//
// Nothing of it is built yet: no issue has scheduled it. Until it is, the
// allocator (swarm/allocator) allocates published ports only, and services
// are reached at their tasks' own addresses.
package mesh
