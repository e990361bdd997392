// Package endpoint is the node side of the routing mesh's endpoint tables
// (design §8, issue 15): it turns the tasks a node runs into gossip
// entries, and everyone's entries into the node's balancer services and
// DNS records, on the host data path.
//
// # Publishing
//
// The agent calls Runtime.SetLocal with the full set of tasks the node
// runs (FromTask makes each from its api.Task and host ports). Each task is
// one entry of the gossip table GossipNetwork/GossipTable, key its task ID,
// value a compact JSON record (entry.go) of at most gossip.MaxValueSize
// bytes: the service's ID, name, mode, host VIP and ports, the task's slot,
// host port per target port, networks and aliases, its node's address and
// whether it is healthy. Entries are self-contained, so no entry waits for
// another to be understood. SetLocal diffs against what it published:
// changed entries are put, tasks no longer listed deleted. An unhealthy
// task stays published with Healthy false (SetLocal says why).
//
// # Applying
//
// The Runtime reads the table once and then follows its changes; after
// each batch of changes (those that arrive together make one pass) it
// computes the desired state, a pure function of the entries, this node's
// ID and its ingress address (desired.go says the rules; only the services
// whose entries changed are recomputed), and applies the difference
// (apply.go): per port of a service with a host VIP, a frontend
// HostVIP:TargetPort; per ingress-published port, a frontend
// IngressAddr:PublishedPort; both with the port's PROXY protocol and
// traffic policy, backends the node address and host port of each of the
// service's tasks (Local for this node's); host-mode ports nothing, since
// the task binds them; and one dns.Service per service. Services whose last
// entry went, by withdrawal or because gossip declared their node dead,
// leave the balancer and the records. A frontend that cannot bind is
// logged and tried again after Config.RetryInterval; the rest is applied.
//
// # Trust
//
// Gossip checks that each entry is signed by its owner's certificate.
// Admit, set as gossip.Config.Admit, refuses malformed and out-of-bounds
// entries; AdmitWith also refuses entries claiming backends off their
// owner's address (Checks.OwnerAddr) and entries without the managers'
// signature that the owner was assigned that task of that service, with
// that VIP, ports and networks (Checks.AssignmentKeys, proof.go). The
// Runtime checks every entry again before it reaches the balancer.
//
// # Wiring
//
// A node sets gossip.Config.Admit to Admit (or AdmitWith) before
// gossip.New, then starts the Runtime over the member, its balancer and
// its DNS records. Whenever the set of tasks it runs, or one's state or
// health, changes, the agent calls SetLocal with every task it runs,
// each from FromTask(task, hostPorts), and Close when the node stops.
package endpoint
