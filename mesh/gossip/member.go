package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrClosed is returned by calls on a closed Member.
var ErrClosed = errors.New("gossip: member is closed")

// Member is one node's gossip: its memberlist member and its copy of the
// tables. It implements Table.
type Member struct {
	cfg      Config
	log      *slog.Logger
	ml       atomic.Pointer[memberlist.Memberlist]
	keyring  *memberlist.Keyring
	queue    *memberlist.TransmitLimitedQueue
	numNodes atomic.Int64 // alive nodes, self included (the queue's fan-out)
	// epoch orders this run's entries after any earlier run's of the same
	// node ID (its clock starts again at zero).
	epoch uint64

	mu sync.Mutex
	st *state
	// floor is this node's floor: the one its entries carry (see state);
	// compacting is set while the entries of a compaction are signed.
	floor      uint64
	compacting bool

	certs     certs
	signer    *signer
	clock     uint64
	alive     map[string]*memberlist.Node    // by node ID, self excluded
	lost      map[string]time.Time           // nodes seen going down, until then
	pending   map[string]map[entryID]pending // by owner, then entry: a lookup per copy received, not a scan
	npending  int
	lastAsked map[string]time.Time
	// refetch counts the requests still to make to nodes back from being
	// declared dead, for the entries everyone dropped (see NotifyJoin).
	refetch map[string]int
	closed  bool

	verified verifiedCache // entries checked before (verified.go)

	keysMu sync.Mutex
	sends  chan struct{} // semaphore of maxConcurrentSends
	watch  watchers
	stats  counters
	stop   chan struct{}
	wg     sync.WaitGroup
}

// pending is an entry held until its owner is known alive and its
// certificate is known.
type pending struct {
	e     *wireEntry
	since time.Time
}

var _ Table = (*Member)(nil)

// New starts a member listening on cfg's address. It is alone until Join
// (or another node joining it).
func New(cfg Config) (*Member, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sg, err := newSigner(cfg.Identity)
	if err != nil {
		return nil, err
	}
	id, err := cfg.Verifier.VerifyChain(sg.chain)
	if err != nil {
		return nil, fmt.Errorf("gossip: Config.Identity's certificate is not trusted by Config.Verifier: %w", err)
	}
	if id != cfg.NodeID {
		return nil, fmt.Errorf("gossip: Config.Identity's certificate is for node %q, not Config.NodeID %q", id, cfg.NodeID)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Member{
		cfg:       cfg,
		log:       log.With("component", "gossip", "node", cfg.NodeID),
		epoch:     uint64(time.Now().UnixNano()),
		st:        newState(),
		certs:     certs{byNode: map[string][]*nodeCert{}},
		signer:    sg,
		alive:     map[string]*memberlist.Node{},
		lost:      map[string]time.Time{},
		pending:   map[string]map[entryID]pending{},
		lastAsked: map[string]time.Time{},
		refetch:   map[string]int{},
		sends:     make(chan struct{}, maxConcurrentSends),
		stop:      make(chan struct{}),
	}
	m.numNodes.Store(1)
	m.certs.add(cfg.NodeID, &nodeCert{fp: sg.fp, chain: sg.chain, der: sg.der})
	m.queue = newQueue(func() int { return int(m.numNodes.Load()) }, cfg.RetransmitMult)
	keys := [][]byte{bytes.Clone(cfg.PrimaryKey)}
	for _, k := range cfg.AcceptedKeys {
		keys = append(keys, bytes.Clone(k))
	}
	if m.keyring, err = memberlist.NewKeyring(keys, keys[0]); err != nil {
		return nil, fmt.Errorf("gossip: keyring: %w", err)
	}
	ml, err := memberlist.Create(m.memberlistConfig())
	if err != nil {
		return nil, fmt.Errorf("gossip: start member %q on %s:%d: %w", cfg.NodeID, cfg.BindAddr, cfg.BindPort, err)
	}
	m.ml.Store(ml)
	m.announceCert()
	m.wg.Add(1)
	go m.housekeep()
	return m, nil
}

func (m *Member) memberlistConfig() *memberlist.Config {
	c := m.cfg
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.NodeID
	mc.BindAddr, mc.BindPort = c.BindAddr, c.BindPort
	mc.AdvertiseAddr, mc.AdvertisePort = c.AdvertiseAddr, c.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort // 0 too: memberlist then advertises the port it picked
	}
	mc.ProbeInterval, mc.ProbeTimeout = c.ProbeInterval, c.ProbeTimeout
	mc.SuspicionMult, mc.SuspicionMaxTimeoutMult = c.SuspicionMult, c.SuspicionMaxTimeoutMult
	mc.IndirectChecks = c.IndirectChecks
	mc.GossipInterval, mc.GossipNodes = c.GossipInterval, c.GossipNodes
	mc.RetransmitMult = c.RetransmitMult
	mc.PushPullInterval, mc.TCPTimeout = c.PushPullInterval, c.TCPTimeout
	mc.Keyring = m.keyring
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	// No LZW: memberlist builds a 64 KiB table per message compressed,
	// which dominated CPU with 50 members in one process, and signed
	// entries barely compress.
	mc.EnableCompression = false
	mc.Delegate = (*delegate)(m)
	mc.Events = (*events)(m)
	mc.Logger = newMemberlistLogger(m.log)
	return mc
}

// NodeID implements Table.
func (m *Member) NodeID() string { return m.cfg.NodeID }

// Port is the port the member listens on (the one picked, if BindPort was 0).
func (m *Member) Port() int { return int(m.ml.Load().LocalNode().Port) }

// Addr is host:port where others reach this member (to give to Join).
func (m *Member) Addr() string { return m.ml.Load().LocalNode().Address() }

// Join contacts the given host:port addresses, exchanges full state with
// each that answers, and returns how many did. An error means none did.
func (m *Member) Join(addrs []string) (int, error) {
	n, err := m.ml.Load().Join(addrs)
	if err != nil {
		return n, fmt.Errorf("gossip: join %v: %w", addrs, err)
	}
	m.announceCert()
	return n, nil
}

// Leave tells the others this node is leaving (they drop its entries and
// see it EventNodeDown with Left set) and waits up to timeout for that
// message to go out. Close should follow.
func (m *Member) Leave(timeout time.Duration) error {
	if err := m.ml.Load().Leave(timeout); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Close stops the member without telling anyone (others declare it dead
// after the suspicion timeout), and stops every watcher.
func (m *Member) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	close(m.stop)
	err := m.ml.Load().Shutdown()
	m.wg.Wait()
	m.watch.closeAll()
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

// Members returns the IDs of the other nodes gossip sees alive, sorted.
func (m *Member) Members() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.alive))
	for id := range m.alive {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Put implements Table.
func (m *Member) Put(network, table, key string, value []byte) error {
	if err := checkEntry(network, table, key, value); err != nil {
		return err
	}
	return m.publish(network, table, key, bytes.Clone(value), false)
}

// Delete implements Table.
func (m *Member) Delete(network, table, key string) error {
	if err := checkEntry(network, table, key, nil); err != nil {
		return err
	}
	m.mu.Lock()
	r := m.st.get(entryID{network, table, m.cfg.NodeID, key})
	m.mu.Unlock()
	if r == nil || r.e.deleted {
		return nil
	}
	return m.publish(network, table, key, nil, true)
}

// publish writes a new version of one of this node's entries, signs it,
// applies it here and queues it for gossip. A deletion may first compact
// this node's tombstones (compactOwn), re-publishing the live entries the
// new floor would otherwise cover.
func (m *Member) publish(network, table, key string, value []byte, deleted bool) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	var es []*wireEntry
	compacting := false
	if deleted {
		es, compacting = m.compactOwn()
	}
	m.clock++
	es = append(es, &wireEntry{network: network, table: table, owner: m.cfg.NodeID, key: key,
		epoch: m.epoch, version: m.clock, floor: m.floor, deleted: deleted, value: value, certFP: m.signer.fp})
	sg := m.signer
	m.mu.Unlock()
	// Sign outside the lock (the signer may be slow, e.g. a hardware
	// key). Two concurrent Puts of one key keep the later version.
	err := signAll(sg, es)
	now := time.Now()
	var send []*wireEntry
	m.mu.Lock()
	if compacting {
		m.compacting = false
	}
	for _, e := range es {
		if err != nil {
			break
		}
		evs, changed, aerr := m.st.apply(e, now, m.cfg.ReapTime)
		m.watch.publish(evs)
		if aerr != nil {
			err = fmt.Errorf("gossip: put %s/%s/%s: %w", e.network, e.table, e.key, aerr)
		} else if changed {
			send = append(send, e)
		}
	}
	m.mu.Unlock()
	for _, e := range send {
		m.broadcastEntry(e)
	}
	return err
}

func signAll(sg *signer, es []*wireEntry) error {
	for _, e := range es {
		sig, err := sg.sign(e.signedBytes())
		if err != nil {
			return fmt.Errorf("gossip: sign %s/%s/%s: %w", e.network, e.table, e.key, err)
		}
		if len(sig) > MaxSignatureSize {
			return fmt.Errorf("gossip: signature is %d bytes, more than the %d allowed", len(sig), MaxSignatureSize)
		}
		e.sig = sig
	}
	return nil
}

// compactOwn is called before this node adds a tombstone (m.mu held). Once
// it holds ownTombstones of them, it raises its floor to the version of the
// newest of the oldest half and returns, with new versions, its live
// entries at or below that floor: they are re-published before the floor
// covers them (a failure to sign them leaves them to the next compaction).
// The floor goes out with every entry signed from now on; applying the
// first of them here drops the tombstones it covers. It reports whether it
// started a compaction, which the caller ends once its entries are applied.
func (m *Member) compactOwn() ([]*wireEntry, bool) {
	own := ownTombstones * m.st.tombCap / MaxTombstonesPerNode // tests shrink tombCap
	o := m.st.owners[m.cfg.NodeID]
	if o == nil || o.tombs < own || m.compacting {
		return nil, false
	}
	m.compacting = true
	vs := make([]uint64, 0, o.tombs)
	for _, r := range o.entries {
		if r.e.deleted {
			vs = append(vs, r.e.version)
		}
	}
	slices.Sort(vs)
	m.floor = max(m.floor, vs[len(vs)-own/2-1])
	var refresh []*wireEntry
	for _, r := range o.entries {
		if !r.e.deleted && r.e.version <= m.floor {
			m.clock++
			c := *r.e
			c.version, c.floor, c.certFP, c.sig = m.clock, m.floor, m.signer.fp, nil
			refresh = append(refresh, &c)
		}
	}
	m.log.Debug("compacting tombstones", "floor", m.floor, "tombstones", o.tombs, "republished", len(refresh))
	return refresh, true
}

// Get implements Table.
func (m *Member) Get(network, table, owner, key string) (Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.st.get(entryID{network, table, owner, key})
	if r == nil || r.e.deleted {
		return Entry{}, false
	}
	return r.e.public(), true
}

// Walk implements Table.
func (m *Member) Walk(network, table string, fn func(Entry) bool) {
	for _, e := range m.Entries(network, table) {
		if !fn(e) {
			return
		}
	}
}

// Entries returns the live entries of network/table (empty: all), sorted by
// network, table, owner and key.
func (m *Member) Entries(network, table string) []Entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.entries(network, table)
}

func sortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool {
		a, b := &es[i], &es[j]
		if a.Network != b.Network {
			return a.Network < b.Network
		}
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		if a.Owner != b.Owner {
			return a.Owner < b.Owner
		}
		return a.Key < b.Key
	})
}

// Watch implements Table.
func (m *Member) Watch(network, table string, fn func(Event)) (stop func()) {
	return m.watch.add(network, table, fn)
}

// SetIdentity replaces the node's certificate and key (after a renewal) and
// signs this node's entries again with them, so that others can forget the
// old certificate.
func (m *Member) SetIdentity(id Identity) error {
	sg, err := newSigner(id)
	if err != nil {
		return err
	}
	nodeID, err := m.cfg.Verifier.VerifyChain(sg.chain)
	if err != nil {
		return fmt.Errorf("gossip: new identity's certificate is not trusted: %w", err)
	}
	if nodeID != m.cfg.NodeID {
		return fmt.Errorf("gossip: new identity's certificate is for node %q, not %q", nodeID, m.cfg.NodeID)
	}
	m.mu.Lock()
	m.signer = sg
	m.certs.add(m.cfg.NodeID, &nodeCert{fp: sg.fp, chain: sg.chain, der: sg.der})
	var own []*wireEntry
	m.st.walk("", "", func(e *wireEntry) {
		if e.owner == m.cfg.NodeID {
			own = append(own, e)
		}
	})
	m.mu.Unlock()
	m.announceCert()
	for _, e := range own {
		if err := m.publish(e.network, e.table, e.key, e.value, false); err != nil {
			return err
		}
	}
	return nil
}

func (m *Member) broadcastEntry(e *wireEntry) {
	m.queue.QueueBroadcast(&broadcast{
		name: "e\x00" + e.network + "\x00" + e.table + "\x00" + e.owner + "\x00" + e.key,
		msg:  encodeEntryMsg(e),
	})
}

// maxCertBroadcast is the largest certificate message gossiped in a UDP
// packet (1,400 bytes less encryption and memberlist framing); a larger
// chain reaches others only by push/pull and direct requests.
const maxCertBroadcast = 1300

// announceCert gossips this node's current chain, so that others can check
// its entries without asking it (which would be one TCP request from every
// node to each new one).
func (m *Member) announceCert() {
	m.mu.Lock()
	sg := m.signer
	m.mu.Unlock()
	m.broadcastCert(certChain{owner: m.cfg.NodeID, der: sg.der})
}

func (m *Member) broadcastCert(c certChain) {
	msg := encodeBatch(&batch{certs: []certChain{c}})
	if len(msg) > maxCertBroadcast {
		return
	}
	m.queue.QueueBroadcast(&broadcast{name: "c\x00" + c.owner, msg: msg})
}

// broadcast is a message in memberlist's transmit queue; a newer message of
// the same name (the same entry, or a node's certificate) replaces it.
type broadcast struct {
	name string
	msg  []byte
}

func (b *broadcast) Name() string                            { return b.name }
func (b *broadcast) Invalidates(o memberlist.Broadcast) bool { return false }
func (b *broadcast) Message() []byte                         { return b.msg }
func (b *broadcast) Finished()                               {}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)
