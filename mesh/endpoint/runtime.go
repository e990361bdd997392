package endpoint

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/gossip"
)

// DefaultRetryInterval is how long after a frontend failed to bind (its
// port held by another program) the runtime tries again.
const DefaultRetryInterval = 5 * time.Second

// MaxLocalTasks bounds the tasks one SetLocal may publish: the live
// entries gossip keeps per node (gossip.MaxEntriesPerNode, 4,096); the
// tombstones of tasks that went have a bound of their own
// (gossip.MaxTombstonesPerNode).
const MaxLocalTasks = gossip.MaxEntriesPerNode

// Config configures a Runtime. Start from DefaultConfig.
type Config struct {
	// NodeID is this node's ID: the owner of its gossip entries. It must
	// be Gossip's NodeID.
	NodeID string
	// NodeAddr is where this node's tasks listen on the host data path
	// (APIARY_HOST): the address of every backend it publishes.
	NodeAddr netip.Addr
	// IngressAddr is where this node listens on ingress-published ports;
	// invalid means this node serves no ingress.
	IngressAddr netip.Addr
	// LoopbackVIP serves every service's VIP on 127.0.0.1, each port on
	// its loopback VIP port (api.Endpoint.LoopbackPorts), and DNS answers
	// so, instead of on the service's host VIP: for systems where only
	// 127.0.0.1 is a loopback address without configuration (outside
	// Linux). Clients then need the port from DNS (SRV records).
	LoopbackVIP bool
	// UnprivilegedPortStart is the lowest port this node may listen on
	// without privileges; 0 means it may listen on any. A VIP port below
	// it (a target port 80, say, for a node that does not run as root)
	// is served on its loopback VIP port instead, on the VIP, and DNS
	// gives that port in SRV records: clients that read SRV records
	// reach the service, where a listener on port 80 could not bind.
	UnprivilegedPortStart uint16
	// Gossip carries the endpoint table; Balancer and DNS are what it is
	// applied to.
	Gossip   gossip.Table
	Balancer balancer.Balancer
	DNS      Records
	// RetryInterval is how long after a failed frontend the runtime tries
	// again.
	RetryInterval time.Duration
	// Logger receives the runtime's messages; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults; NodeID, NodeAddr, Gossip, Balancer
// and DNS must still be set.
func DefaultConfig() Config {
	return Config{RetryInterval: DefaultRetryInterval}
}

func (c *Config) validate() error {
	switch {
	case c.Gossip == nil:
		return errors.New("endpoint: Config.Gossip is nil")
	case c.Balancer == nil:
		return errors.New("endpoint: Config.Balancer is nil")
	case c.DNS == nil:
		return errors.New("endpoint: Config.DNS is nil")
	case c.NodeID == "":
		return errors.New("endpoint: Config.NodeID is empty")
	case c.NodeID != c.Gossip.NodeID():
		return fmt.Errorf("endpoint: Config.NodeID %q is not Config.Gossip's node %q", c.NodeID, c.Gossip.NodeID())
	case c.RetryInterval <= 0:
		return fmt.Errorf("endpoint: Config.RetryInterval is %v, must be positive", c.RetryInterval)
	case c.IngressAddr.IsValid() && c.IngressAddr.Zone() != "":
		return fmt.Errorf("endpoint: Config.IngressAddr %v: zoned addresses are not supported", c.IngressAddr)
	}
	probe := record{Task: "t", Service: "s", ServiceName: "n", Addr: c.NodeAddr}
	if err := probe.validate(); err != nil {
		return fmt.Errorf("endpoint: Config.NodeAddr %v is not a host address", c.NodeAddr)
	}
	c.NodeAddr = c.NodeAddr.Unmap()
	c.IngressAddr = c.IngressAddr.Unmap()
	return nil
}

// Runtime is one node's endpoint runtime: it publishes the tasks this node
// runs in the gossip endpoint table (SetLocal) and keeps the node's
// balancer and DNS records in step with everyone's entries.
type Runtime struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex        // guards published and closed
	published map[string][]byte // task ID → value put
	closed    bool

	// events are the watch's changes not yet taken by the loop.
	evMu   sync.Mutex
	events []gossip.Event

	// The loop's own state: every valid entry by owner and key, grouped
	// by service; each service's part of the state, recomputed only when
	// one of its entries changed (dirty).
	apply     *applier
	entries   map[entryKey]owned
	byService map[string]map[entryKey]owned
	parts     map[string]*serviceState
	dirty     map[string]bool

	wake      chan struct{} // capacity 1: "entries may have changed"
	quit      chan struct{}
	done      chan struct{}
	stopWatch func()
}

type entryKey struct{ owner, key string }

// New starts a Runtime: it watches the endpoint table and applies it to the
// balancer and DNS records at once, then after every change.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runtime{
		cfg: cfg, log: log, published: map[string][]byte{},
		apply:   newApplier(cfg.Balancer, cfg.DNS, log),
		entries: map[entryKey]owned{}, byService: map[string]map[entryKey]owned{},
		parts: map[string]*serviceState{}, dirty: map[string]bool{},
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	// Watch first, then read the table (in run): every change after the
	// read is among the events, applied after it in order, so the last
	// event of an entry leaves it as it is, whatever the read saw.
	r.stopWatch = cfg.Gossip.Watch(GossipNetwork, GossipTable, func(ev gossip.Event) {
		r.evMu.Lock()
		r.events = append(r.events, ev)
		r.evMu.Unlock()
		r.poke()
	})
	go r.run()
	return r, nil
}

func (r *Runtime) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// SetLocal publishes tasks as the full set this node runs: an entry put
// for each task that is new or changed, and deleted for each published
// task no longer listed. It is idempotent; call it whenever a task starts,
// stops or changes health. A task that cannot be published (an invalid
// field, an entry too large) is withdrawn and named in the error; the
// others are published all the same.
//
// Unhealthy tasks are published with Healthy false rather than withdrawn:
// either is one gossip message, so they converge as fast, but a listed
// unhealthy task keeps its service known everywhere, so while every task
// of a service is unhealthy its VIP and ingress ports still listen (and
// refuse) and its name still resolves, instead of frontends closing and
// rebinding and names flapping to NXDOMAIN, which resolvers cache.
func (r *Runtime) SetLocal(tasks []LocalTask) error {
	if len(tasks) > MaxLocalTasks {
		return fmt.Errorf("endpoint: SetLocal: %d tasks, more than the %d a node may publish", len(tasks), MaxLocalTasks)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("endpoint: SetLocal: runtime is closed")
	}
	var errs []error
	listed := make(map[string]bool, len(tasks))
	put := make([]LocalTask, 0, len(tasks))
	for _, t := range tasks {
		if listed[t.ID] {
			errs = append(errs, fmt.Errorf("endpoint: SetLocal: task %q listed twice", t.ID))
			continue
		}
		listed[t.ID] = true
		put = append(put, t)
	}
	var gone []string
	for id := range r.published {
		if !listed[id] {
			gone = append(gone, id)
		}
	}
	return errors.Join(append(errs, r.update(put, gone))...)
}

// Update publishes a change of the set SetLocal last published: put are
// tasks new or changed, gone the IDs of tasks no longer run. Where
// SetLocal encodes every task it is given, Update touches only these, so a
// node starting thousands of tasks in bursts spends per burst what the
// burst changed, not what the node runs. The published set stays within
// MaxLocalTasks: a new task beyond it is refused, named in the error. As
// with SetLocal, a task that cannot be published is withdrawn and named;
// the others are published all the same.
func (r *Runtime) Update(put []LocalTask, gone []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("endpoint: Update: runtime is closed")
	}
	return r.update(put, gone)
}

// update is Update with r.mu held: what went is withdrawn first, so that
// its room under MaxLocalTasks is free for what comes.
func (r *Runtime) update(put []LocalTask, gone []string) error {
	var errs []error
	for _, id := range gone {
		if _, ok := r.published[id]; !ok {
			continue
		}
		if err := r.cfg.Gossip.Delete(GossipNetwork, GossipTable, id); err != nil {
			errs = append(errs, fmt.Errorf("endpoint: withdraw task %s: %w", id, err))
			continue
		}
		delete(r.published, id)
	}
	for i := range put {
		t := &put[i]
		old, had := r.published[t.ID]
		if !had && len(r.published) >= MaxLocalTasks {
			errs = append(errs, fmt.Errorf("endpoint: publish task %s: this node already publishes %d tasks, the most it may", t.ID, MaxLocalTasks))
			continue
		}
		value, err := r.encode(t)
		if err == nil && bytes.Equal(old, value) {
			continue
		}
		if err == nil {
			err = r.cfg.Gossip.Put(GossipNetwork, GossipTable, t.ID, value)
			if err != nil {
				err = fmt.Errorf("endpoint: publish task %s: %w", t.ID, err)
			}
		}
		if err == nil {
			r.published[t.ID] = value
			continue
		}
		errs = append(errs, err)
		if had {
			// Its entry says what it no longer is: withdraw it.
			if derr := r.cfg.Gossip.Delete(GossipNetwork, GossipTable, t.ID); derr == nil {
				delete(r.published, t.ID)
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Runtime) encode(t *LocalTask) ([]byte, error) {
	rec, err := t.record(r.cfg.NodeAddr)
	if err != nil {
		return nil, err
	}
	return rec.encode()
}

// Close withdraws this node's entries, removes what the runtime added to
// the balancer and DNS records, and stops it.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	var errs []error
	for id := range r.published {
		if err := r.cfg.Gossip.Delete(GossipNetwork, GossipTable, id); err != nil && !errors.Is(err, gossip.ErrClosed) {
			errs = append(errs, fmt.Errorf("endpoint: withdraw task %s: %w", id, err))
		}
	}
	r.published = nil
	r.mu.Unlock()
	r.stopWatch()
	close(r.quit)
	<-r.done
	r.apply.clear()
	return errors.Join(errs...)
}

// run reads the table, then applies the desired state after every batch
// of changes (one pass for however many arrived meanwhile), and again after
// RetryInterval while a frontend fails.
func (r *Runtime) run() {
	defer close(r.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	r.cfg.Gossip.Walk(GossipNetwork, GossipTable, func(e gossip.Entry) bool {
		r.put(e)
		return true
	})
	for {
		r.evMu.Lock()
		evs := r.events
		r.events = nil
		r.evMu.Unlock()
		for _, ev := range evs {
			switch ev.Kind {
			case gossip.EventCreate, gossip.EventUpdate:
				r.put(ev.Entry)
			case gossip.EventDelete:
				r.drop(entryKey{ev.Entry.Owner, ev.Entry.Key})
			}
		}
		began := time.Now()
		if r.apply.apply(r.desired()) {
			retry.Reset(r.cfg.RetryInterval)
		}
		if !r.pace(time.Since(began)) {
			return
		}
		select {
		case <-r.quit:
			return
		case <-r.wake:
		case <-retry.C:
		}
	}
}

// Pacing. A pass costs what the services it recomputes hold: a service of
// 12,000 tasks takes milliseconds (BenchmarkPass). While a node starts
// thousands of tasks their entries arrive without pause, and a loop that
// passed again at once would spend a core recomputing the same services
// for one more entry each. After a pass longer than minPaced the loop
// waits as long as the pass took (at most maxPace) before taking the next
// batch: it then spends at most half its time in passes, each pass takes
// what arrived meanwhile, and a change waits at most one pass more. Short
// passes, the common case, are not paced.
const (
	minPaced = 2 * time.Millisecond
	maxPace  = 250 * time.Millisecond
)

// pace waits after a pass that took d; false means the runtime is closing.
func (r *Runtime) pace(d time.Duration) bool {
	if d < minPaced {
		return true
	}
	t := time.NewTimer(min(d, maxPace))
	defer t.Stop()
	select {
	case <-r.quit:
		return false
	case <-t.C:
		return true
	}
}

// put records an entry, replacing its previous version. An entry that
// does not decode is left out (and logged): Admit refuses it on a Member,
// but an in-memory gossip does not call Admit, and a node must not trust
// its gossip's configuration for what reaches its balancer.
func (r *Runtime) put(e gossip.Entry) {
	k := entryKey{e.Owner, e.Key}
	r.drop(k)
	rec, err := decode(e.Value)
	if err == nil && rec.Task != e.Key {
		err = fmt.Errorf("endpoint: entry key %q is not its task ID %q", e.Key, rec.Task)
	}
	if err != nil {
		r.log.Warn("endpoint: ignoring an endpoint entry", "owner", e.Owner, "key", e.Key, "err", err)
		return
	}
	o := owned{owner: e.Owner, rec: rec}
	r.entries[k] = o
	tasks := r.byService[rec.Service]
	if tasks == nil {
		tasks = map[entryKey]owned{}
		r.byService[rec.Service] = tasks
	}
	tasks[k] = o
	r.dirty[rec.Service] = true
}

func (r *Runtime) drop(k entryKey) {
	o, ok := r.entries[k]
	if !ok {
		return
	}
	delete(r.entries, k)
	id := o.rec.Service
	delete(r.byService[id], k)
	if len(r.byService[id]) == 0 {
		delete(r.byService, id)
	}
	r.dirty[id] = true
}

// desired recomputes the services whose entries changed and merges every
// service's part: the same state desired() computes from all the entries.
func (r *Runtime) desired() state {
	for id := range r.dirty {
		tasks := r.byService[id]
		if len(tasks) == 0 {
			delete(r.parts, id)
			continue
		}
		list := make([]owned, 0, len(tasks))
		for _, o := range tasks {
			list = append(list, o)
		}
		r.parts[id] = desiredService(view{self: r.cfg.NodeID, ingress: r.cfg.IngressAddr, loopback: r.cfg.LoopbackVIP, privBelow: r.cfg.UnprivilegedPortStart}, list)
	}
	clear(r.dirty)
	parts := make([]*serviceState, 0, len(r.parts))
	for _, p := range r.parts {
		parts = append(parts, p)
	}
	return merge(parts)
}
