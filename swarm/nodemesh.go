package swarm

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/dns"
	"github.com/apiary-io/apiary/mesh/endpoint"
	"github.com/apiary-io/apiary/mesh/gossip"
	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
)

// DataPathHost is the host data path (design §8): tasks share the node's
// network, listen on host ports their environment names, and the node's
// userspace balancer serves every service's VIP and ingress ports.
const DataPathHost = "host"

// MeshConfig is a node's routing mesh. With DataPath empty the node takes
// no part in it: no gossip, DNS or balancer (the library's default, so that
// an embedding program binds nothing it did not ask for; apiaryd turns it
// on).
type MeshConfig struct {
	// DataPath is "" (no mesh) or DataPathHost.
	DataPath string
	// GossipAddr is where the node gossips (UDP and TCP): HOST:PORT, port
	// 0 for any. Empty means the node's listen host on gossip.DefaultPort.
	GossipAddr string
	// DNSAddr is where the node's DNS server listens (UDP and TCP):
	// HOST:PORT, port 0 for any. Empty means the node's listen host on
	// the port of dns.DefaultAddr (8653).
	DNSAddr string
	// IngressAddr is the address the node accepts ingress-published
	// ports on. Empty means the node's listen host, so that nodes sharing
	// a machine (each on its own loopback address) do not collide.
	IngressAddr string
	// VIPs is where the node serves services' VIPs: VIPsRange (each
	// service's host VIP of api.HostVIPRange, on its target ports) or
	// VIPsLoopback (127.0.0.1, each port on its loopback VIP port: DNS
	// SRV records give it). Empty means VIPsRange on Linux, where all of
	// 127.0.0.0/8 is a loopback address, and VIPsLoopback elsewhere.
	VIPs string
}

// Values of MeshConfig.VIPs.
const (
	VIPsRange    = "range"
	VIPsLoopback = "loopback"
)

// loopbackVIPs says whether a node serves VIPs on 127.0.0.1.
func (c MeshConfig) loopbackVIPs() (bool, error) {
	switch c.VIPs {
	case "":
		return goruntime.GOOS != "linux", nil
	case VIPsRange:
		return false, nil
	case VIPsLoopback:
		return true, nil
	}
	return false, fmt.Errorf("mesh: VIPs %q: want %q or %q", c.VIPs, VIPsRange, VIPsLoopback)
}

// nodeMesh is one node's part of the mesh: the balancer and DNS server
// start with the node; gossip and the endpoint runtime start once the
// managers sent the first gossip key (a node without the current key
// cannot take part).
type nodeMesh struct {
	cfg      MeshConfig
	nodeID   string
	hostAddr netip.Addr
	ident    *pki.NodeIdentity
	log      *slog.Logger

	bal      *balancer.Proxy
	records  *dns.Table
	dnsSrv   *dns.Server
	verifier *gossip.CertPoolVerifier

	// pubMu serializes publishing and guards local; it is taken before
	// mu, and held while the runtime publishes, which mu is not: the
	// agent's heartbeat asks mu (alone), and must not wait for thousands
	// of entries to be signed.
	pubMu sync.Mutex
	local map[string]localTask // the tasks published, or to publish once gossip runs
	// resync is set when the runtime refused a change: the next call
	// publishes the whole set (SetLocal), which retries what failed.
	resync bool

	mu      sync.Mutex
	member  *gossip.Member
	runtime *endpoint.Runtime
	peers   []string // gossip addresses to join, once gossip runs
	closed  bool

	overLimit atomic.Bool // warned that tasks were left out
	// assignKey is the public key of the managers' assignment proofs,
	// from the latest gossip keys: gossip admits only entries proven by
	// it (endpoint.Checks.AssignmentKeys).
	assignKey atomic.Pointer[ed25519.PublicKey]

	// onPeerDown is told each node gossip declares down (the manager's
	// dispatcher takes it as a suspicion); stopWatch ends that watch.
	onPeerDown func(nodeID string)
	stopWatch  func()
}

// nodeEventsOnly is a table name no entry can have (gossip refuses names
// that are not UTF-8), so that a watcher of it sees node events only:
// gossip delivers those to every watcher.
const nodeEventsOnly = "\xff"

// meshHost is the host part of the node's listen address as an address.
func meshHost(listenAddr string) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("mesh: listen address %q: %w", listenAddr, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("mesh: listen address %q: the host data path needs a specific IP address (set MeshConfig addresses)", listenAddr)
	}
	return a.Unmap(), nil
}

func startNodeMesh(cfg MeshConfig, nodeID, listenAddr string, ident *pki.NodeIdentity, log *slog.Logger, onPeerDown func(string)) (*nodeMesh, error) {
	if cfg.DataPath != DataPathHost {
		return nil, fmt.Errorf("mesh: data path %q: only %q is built", cfg.DataPath, DataPathHost)
	}
	if _, err := cfg.loopbackVIPs(); err != nil {
		return nil, err
	}
	host, err := meshHost(listenAddr)
	if err != nil {
		return nil, err
	}
	m := &nodeMesh{cfg: cfg, nodeID: nodeID, hostAddr: host, ident: ident, log: log.With("part", "mesh"), onPeerDown: onPeerDown}
	if m.cfg.GossipAddr == "" {
		m.cfg.GossipAddr = net.JoinHostPort(host.String(), strconv.Itoa(gossip.DefaultPort))
	}
	// The node registers its gossip address before gossip starts (that
	// waits for the first key): a port left to the system is chosen now.
	if m.cfg.GossipAddr, err = concretePort(m.cfg.GossipAddr); err != nil {
		return nil, err
	}
	if m.cfg.IngressAddr == "" {
		m.cfg.IngressAddr = host.String()
	}
	roots, err := rootPool(ident)
	if err != nil {
		return nil, err
	}
	m.verifier = gossip.NewCertPoolVerifier(roots)
	bc := balancer.DefaultConfig()
	bc.Logger = m.log
	if m.bal, err = balancer.New(bc); err != nil {
		return nil, err
	}
	m.records = dns.NewTable()
	dc := dns.DefaultConfig()
	if cfg.DNSAddr != "" {
		dc.Addr = cfg.DNSAddr
	} else {
		_, port, _ := net.SplitHostPort(dc.Addr)
		dc.Addr = net.JoinHostPort(host.String(), port)
	}
	dc.Records = m.records
	dc.Logger = m.log
	if m.dnsSrv, err = dns.Listen(dc); err != nil {
		m.bal.Close()
		return nil, err
	}
	return m, nil
}

// concretePort returns addr with a free port (TCP and UDP) in place of
// port 0. The port may be taken by someone else before gossip binds it;
// gossip's start then fails and says so.
func concretePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("mesh: gossip address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	for range 32 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", fmt.Errorf("mesh: gossip address %q: %w", addr, err)
		}
		a := l.Addr().String()
		u, uerr := net.ListenPacket("udp", a)
		l.Close()
		if uerr == nil {
			u.Close()
			return a, nil
		}
	}
	return "", fmt.Errorf("mesh: gossip address %q: no port free for both TCP and UDP", addr)
}

// rootPool is the pool of the cluster's root CAs the node trusts.
func rootPool(ident *pki.NodeIdentity) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ident.TrustBundle()) {
		return nil, errors.New("mesh: the node's trust bundle holds no certificate")
	}
	return pool, nil
}

// gossipAddr is where the node gossips, as others must dial it: the bound
// port once gossip runs (the configured one may be 0), else the
// configured address.
func (m *nodeMesh) gossipAddr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.member != nil {
		return net.JoinHostPort(m.member.Addr(), strconv.Itoa(m.member.Port()))
	}
	return m.cfg.GossipAddr
}

// alone says whether the node's gossip knows no other node (or has not
// started): the agent then asks the managers for peers.
func (m *nodeMesh) alone() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.member == nil || len(m.member.Members()) <= 1
}

// DNSAddr is where the node's DNS server answers (APIARY_DNS).
func (m *nodeMesh) DNSAddr() string { return m.dnsSrv.Addr().String() }

// setKeys installs the gossip keys the managers sent, starting gossip and
// the endpoint runtime with the first ones.
//
// As Swarm does, a node encrypts with the second-newest key when there are
// two or more, and accepts all of them: a rotation's new key reaches the
// nodes one heartbeat apart, and a node that encrypted with it at once
// would be unreadable to those that have not got it yet. By the next
// rotation every node holds it, and it becomes the one in use. The cost:
// after a node's removal, the key in use is one the removed node knew,
// until the following rotation (12 h by default).
func (m *nodeMesh) setKeys(k agent.GossipKeys) error {
	newest, older := k.Raw()
	if len(newest) == 0 {
		return nil
	}
	if len(k.AssignmentKey) == ed25519.PublicKeySize {
		pub := ed25519.PublicKey(bytes.Clone(k.AssignmentKey))
		m.assignKey.Store(&pub)
	}
	keys := append([][]byte{newest}, older...)
	if len(keys) >= 2 {
		keys[0], keys[1] = keys[1], keys[0]
	}
	m.pubMu.Lock() // the first runtime publishes local
	defer m.pubMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	if m.member != nil {
		return m.member.SetKeys(keys[0], keys[1:]...)
	}
	host, port, err := net.SplitHostPort(m.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("mesh: gossip address %q: %w", m.cfg.GossipAddr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("mesh: gossip address %q: port: %w", m.cfg.GossipAddr, err)
	}
	id, err := gossip.IdentityFromTLS(m.ident.Certificate())
	if err != nil {
		return err
	}
	gc := gossip.DefaultConfig()
	gc.NodeID, gc.BindAddr, gc.BindPort = m.nodeID, host, p
	gc.PrimaryKey, gc.AcceptedKeys = keys[0], keys[1:]
	gc.Identity, gc.Verifier = id, m.verifier
	gc.Admit = endpoint.AdmitWith(endpoint.Checks{AssignmentKeys: m.assignmentKeys})
	gc.Logger = m.log
	member, err := gossip.New(gc)
	if err != nil {
		return err
	}
	ec := endpoint.DefaultConfig()
	ec.NodeID, ec.NodeAddr = m.nodeID, m.hostAddr
	ec.LoopbackVIP, _ = m.cfg.loopbackVIPs() // checked at start
	ec.UnprivilegedPortStart = unprivilegedPortStart()
	if a, err := netip.ParseAddr(m.cfg.IngressAddr); err == nil {
		ec.IngressAddr = a
	}
	ec.Gossip, ec.Balancer, ec.DNS, ec.Logger = member, m.bal, m.records, m.log
	rt, err := endpoint.New(ec)
	if err != nil {
		member.Close()
		return err
	}
	m.member, m.runtime = member, rt
	if m.onPeerDown != nil {
		m.stopWatch = member.Watch(endpoint.GossipNetwork, nodeEventsOnly, func(ev gossip.Event) {
			if ev.Kind == gossip.EventNodeDown {
				m.onPeerDown(ev.Entry.Owner)
			}
		})
	}
	if len(m.peers) > 0 {
		m.joinLocked(m.peers)
	}
	if err := rt.SetLocal(m.localList()); err != nil {
		m.log.Warn("publish local tasks", "err", err)
	}
	m.log.Info("gossip started", "addr", m.cfg.GossipAddr)
	return nil
}

// unprivilegedPortStart is the lowest port this process may listen on: 0
// (any) as root, else Linux's net.ipv4.ip_unprivileged_port_start, or
// 1024. VIP ports below it are served on their loopback VIP ports
// (endpoint.Config.UnprivilegedPortStart), so a node run without
// privileges still serves a service whose target port is 80.
func unprivilegedPortStart() uint16 {
	if os.Geteuid() == 0 {
		return 0
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 16); err == nil {
			return uint16(n)
		}
	}
	return 1024
}

// assignmentKeys is endpoint.Checks.AssignmentKeys: none until the
// managers sent one, which refuses every remote entry.
func (m *nodeMesh) assignmentKeys() []ed25519.PublicKey {
	if k := m.assignKey.Load(); k != nil {
		return []ed25519.PublicKey{*k}
	}
	return nil
}

// setPeers joins the gossip addresses of other nodes not joined yet.
func (m *nodeMesh) setPeers(addrs []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var fresh []string
	for _, a := range addrs {
		if a != m.cfg.GossipAddr && !slices.Contains(m.peers, a) {
			fresh = append(fresh, a)
		}
	}
	if len(fresh) == 0 {
		return
	}
	m.peers = append(m.peers, fresh...)
	if m.member != nil {
		m.joinLocked(fresh)
	}
}

func (m *nodeMesh) joinLocked(addrs []string) {
	// Joining is best effort: memberlist learns of everyone from anyone,
	// and a peer down now is found by the others' gossip later.
	if n, err := m.member.Join(addrs); err != nil && n == 0 {
		m.log.Debug("gossip join", "peers", addrs, "err", err)
	}
}

// localTask is a task as last published: the agent's copy (a new one for
// every change of its status, so an unchanged pointer is an unchanged
// task) and its entry.
type localTask struct {
	task  *api.Task
	entry endpoint.LocalTask
}

// setTasks publishes the tasks this node runs, with the host ports the
// agent gave them (Status.PortStatus). It hands the runtime only what
// changed since the last call: a node starting thousands of tasks gets a
// call per burst of changes, and converting and encoding every task it
// runs on each would grow as the square of its tasks.
func (m *nodeMesh) setTasks(tasks []*api.Task) {
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	if m.local == nil {
		m.local = map[string]localTask{}
	}
	seen := make(map[string]bool, len(m.local))
	var put []endpoint.LocalTask
	for _, t := range tasks {
		if t.Status.State > api.TaskStateRunning || t.Status.State < api.TaskStateStarting {
			continue
		}
		prev, had := m.local[t.ID]
		if had && prev.task == t && !m.resync {
			seen[t.ID] = true
			continue
		}
		if !had && len(m.local) >= endpoint.MaxLocalTasks {
			// Gossip bounds the entries one node publishes: the
			// tasks beyond are not reachable through the mesh.
			if !m.overLimit.Swap(true) {
				m.log.Warn("more tasks than the mesh publishes for one node; the rest are left out", "limit", endpoint.MaxLocalTasks)
			}
			continue
		}
		hostPorts := map[uint32]uint16{}
		for _, p := range t.Status.PortStatus {
			hostPorts[p.TargetPort] = uint16(p.PublishedPort)
		}
		lt, err := endpoint.FromTask(t, hostPorts)
		if err != nil {
			m.log.Warn("task left out of the mesh", "task", t.ID, "err", err)
			continue // and withdrawn, if it was published
		}
		seen[t.ID] = true
		m.local[t.ID] = localTask{task: t, entry: lt}
		put = append(put, lt)
	}
	var gone []string
	for id := range m.local {
		if !seen[id] {
			gone = append(gone, id)
			delete(m.local, id)
		}
	}
	m.mu.Lock()
	rt := m.runtime
	m.mu.Unlock()
	if rt == nil || (len(put) == 0 && len(gone) == 0 && !m.resync) {
		return
	}
	var err error
	if m.resync {
		err = rt.SetLocal(m.localList())
	} else {
		err = rt.Update(put, gone)
	}
	// What failed was withdrawn; the next call publishes the whole set
	// again, which retries it.
	m.resync = err != nil
	if err != nil {
		m.log.Warn("publish local tasks", "err", err)
	}
}

// localList is the entries of local, sorted by task ID. pubMu is held.
func (m *nodeMesh) localList() []endpoint.LocalTask {
	out := make([]endpoint.LocalTask, 0, len(m.local))
	for _, l := range m.local {
		out = append(out, l.entry)
	}
	slices.SortFunc(out, func(a, b endpoint.LocalTask) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// setIdentity follows a certificate renewal or a root rotation.
func (m *nodeMesh) setIdentity() {
	if roots, err := rootPool(m.ident); err == nil {
		m.verifier.SetRoots(roots)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.member == nil {
		return
	}
	id, err := gossip.IdentityFromTLS(m.ident.Certificate())
	if err == nil {
		err = m.member.SetIdentity(id)
	}
	if err != nil {
		m.log.Warn("gossip identity", "err", err)
	}
}

func (m *nodeMesh) close() {
	m.mu.Lock()
	m.closed = true
	rt, member, stopWatch := m.runtime, m.member, m.stopWatch
	m.mu.Unlock()
	if rt != nil {
		rt.Close()
	}
	if stopWatch != nil {
		stopWatch() // before the member closes its watchers
	}
	if member != nil {
		member.Close()
	}
	m.dnsSrv.Close()
	m.bal.Close()
}

// suspectPeer passes gossip's verdict that a node is down to this node's
// dispatcher, which serves only while it leads (elsewhere the call does
// nothing): the node is declared down if it then misses a heartbeat
// (dispatcher.Suspect).
func (n *Node) suspectPeer(nodeID string) {
	if mgr := n.Manager(); mgr != nil {
		mgr.dispatcher.Suspect(nodeID)
	}
}

// MeshPeers returns the IDs of the other nodes the node's gossip sees
// alive, sorted; nil without a mesh or before gossip started (it waits for
// the managers' first key).
func (n *Node) MeshPeers() []string {
	if n.mesh == nil {
		return nil
	}
	n.mesh.mu.Lock()
	member := n.mesh.member
	n.mesh.mu.Unlock()
	if member == nil {
		return nil
	}
	return member.Members()
}

// DNSAddr is where the node's DNS server answers service names (the
// routing mesh's; APIARY_DNS of its tasks), "" when the node has no mesh.
func (n *Node) DNSAddr() string {
	if n.mesh == nil {
		return ""
	}
	return n.mesh.DNSAddr()
}
