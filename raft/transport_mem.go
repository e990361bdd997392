package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Network is an in-memory network for tests: every member gets a
// Transport from it, and the test controls the links between them: drop
// a share of the messages, delay them, partition members into groups,
// heal. Messages are marshalled on the way, as on a wire, so no state is
// shared between members by accident.
//
// A member whose transport is stopped (a killed process) is "refusing
// connections": sends to it are reported unreachable at once. A cut link
// drops silently, as a partition does.
type Network struct {
	mu        sync.Mutex
	endpoints map[uint64]*MemTransport
	cut       map[[2]uint64]bool
	drop      map[[2]uint64]float64
	delay     map[[2]uint64][2]time.Duration
	links     map[[2]uint64]*memLink
	closed    bool
}

// NewNetwork returns a network with every link up.
func NewNetwork() *Network {
	return &Network{
		endpoints: map[uint64]*MemTransport{},
		cut:       map[[2]uint64]bool{},
		drop:      map[[2]uint64]float64{},
		delay:     map[[2]uint64][2]time.Duration{},
		links:     map[[2]uint64]*memLink{},
	}
}

// Transport returns a new transport for member id on this network (a
// restarted member gets a new one).
func (nw *Network) Transport(id uint64) *MemTransport {
	return &MemTransport{nw: nw, id: id}
}

// Partition splits the members into groups that cannot reach each other
// (in either direction); members within a group, and members not listed,
// keep their links. It adds to the cuts already made.
func (nw *Network) Partition(groups ...[]uint64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					nw.cut[[2]uint64{a, b}] = true
				}
			}
		}
	}
}

// Isolate cuts member id off from every other member.
func (nw *Network) Isolate(id uint64, others []uint64) {
	nw.Partition([]uint64{id}, others)
}

// Cut cuts the link from one member to another (one direction).
func (nw *Network) Cut(from, to uint64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.cut[[2]uint64{from, to}] = true
}

// SetDrop drops messages from one member to another with probability p
// (0 for from or to means any member).
func (nw *Network) SetDrop(from, to uint64, p float64) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.drop[[2]uint64{from, to}] = p
}

// SetDelay delays messages from one member to another by d plus a random
// jitter up to j (0 for from or to means any member). Order per link is
// kept.
func (nw *Network) SetDelay(from, to uint64, d, j time.Duration) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.delay[[2]uint64{from, to}] = [2]time.Duration{d, j}
}

// Heal restores every link: no cuts, drops or delays.
func (nw *Network) Heal() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	nw.cut = map[[2]uint64]bool{}
	nw.drop = map[[2]uint64]float64{}
	nw.delay = map[[2]uint64][2]time.Duration{}
}

// Close stops the network's delivery goroutines.
func (nw *Network) Close() {
	nw.mu.Lock()
	nw.closed = true
	links := nw.links
	nw.links = map[[2]uint64]*memLink{}
	nw.mu.Unlock()
	for _, l := range links {
		close(l.stop)
		<-l.done
	}
}

func lookup[V any](m map[[2]uint64]V, from, to uint64) (V, bool) {
	for _, k := range [][2]uint64{{from, to}, {from, 0}, {0, to}, {0, 0}} {
		if v, ok := m[k]; ok {
			return v, true
		}
	}
	var zero V
	return zero, false
}

// route decides a message's fate: deliver after delay, drop silently, or
// refuse (the recipient is down).
func (nw *Network) route(from, to uint64) (delay time.Duration, deliver, refused bool) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.closed || nw.cut[[2]uint64{from, to}] {
		return 0, false, false
	}
	if nw.endpoints[to] == nil {
		return 0, false, true
	}
	if p, ok := lookup(nw.drop, from, to); ok && p > 0 && mrand.Float64() < p {
		return 0, false, false
	}
	if d, ok := lookup(nw.delay, from, to); ok {
		delay = d[0]
		if d[1] > 0 {
			delay += mrand.N(d[1])
		}
	}
	return delay, true, false
}

func (nw *Network) linkFor(from, to uint64) *memLink {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.closed {
		return nil
	}
	k := [2]uint64{from, to}
	l := nw.links[k]
	if l == nil {
		l = &memLink{nw: nw, from: from, to: to, q: make(chan memDelivery, 4096), stop: make(chan struct{}), done: make(chan struct{})}
		nw.links[k] = l
		go l.run()
	}
	return l
}

type memDelivery struct {
	b  []byte
	at time.Time
}

// memLink delivers one direction's messages in order.
type memLink struct {
	nw       *Network
	from, to uint64
	q        chan memDelivery
	last     time.Time
	stop     chan struct{}
	done     chan struct{}
}

func (l *memLink) run() {
	defer close(l.done)
	for {
		select {
		case d := <-l.q:
			if w := time.Until(d.at); w > 0 {
				t := time.NewTimer(w)
				select {
				case <-t.C:
				case <-l.stop:
					t.Stop()
					return
				}
			}
			l.deliver(d.b)
		case <-l.stop:
			return
		}
	}
}

func (l *memLink) deliver(b []byte) {
	l.nw.mu.Lock()
	cut := l.nw.cut[[2]uint64{l.from, l.to}]
	dst, src := l.nw.endpoints[l.to], l.nw.endpoints[l.from]
	l.nw.mu.Unlock()
	if cut || dst == nil {
		return
	}
	m := &raftpb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := dst.h.Step(ctx, m); errors.Is(err, ErrRemoved) && src != nil {
		src.h.ReportRemoved(l.to)
	}
}

// MemTransport is a member's endpoint on a Network.
type MemTransport struct {
	nw *Network
	id uint64
	h  Handler
}

var _ Transport = (*MemTransport)(nil)

// Start implements Transport.
func (t *MemTransport) Start(id uint64, h Handler) error {
	if id != t.id {
		return fmt.Errorf("raft: transport for %x started as %x", t.id, id)
	}
	t.nw.mu.Lock()
	defer t.nw.mu.Unlock()
	t.h = h
	t.nw.endpoints[id] = t
	return nil
}

// Send implements Transport.
func (t *MemTransport) Send(msgs []*raftpb.Message) {
	for _, m := range msgs {
		to := m.GetTo()
		delay, ok, refused := t.nw.route(t.id, to)
		if refused {
			t.h.ReportUnreachable(to)
		}
		if !ok {
			continue
		}
		b, err := proto.Marshal(m)
		if err != nil {
			continue
		}
		l := t.nw.linkFor(t.id, to)
		if l == nil {
			return
		}
		at := time.Now().Add(delay)
		select {
		case l.q <- memDelivery{b, at}:
		default: // a full link loses messages, like a full socket buffer
		}
	}
}

// SendSnapshot implements Transport: the data is handed over in chunks,
// and the stream breaks if the link is cut meanwhile.
func (t *MemTransport) SendSnapshot(ctx context.Context, m *raftpb.Message, data io.Reader) error {
	to := m.GetTo()
	delay, ok, refused := t.nw.route(t.id, to)
	if refused {
		return fmt.Errorf("raft: member %x is down", to)
	}
	if !ok {
		return fmt.Errorf("raft: link %x->%x is cut", t.id, to)
	}
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	t.nw.mu.Lock()
	dst := t.nw.endpoints[to]
	t.nw.mu.Unlock()
	if dst == nil {
		return fmt.Errorf("raft: member %x is down", to)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	cm := &raftpb.Message{}
	if err := proto.Unmarshal(b, cm); err != nil {
		return err
	}
	r := &memChunkReader{ctx: ctx, nw: t.nw, from: t.id, to: to, r: data}
	err = dst.h.ReceiveSnapshot(ctx, cm, r)
	if errors.Is(err, ErrRemoved) {
		t.h.ReportRemoved(to)
	}
	return err
}

// memChunkReader hands out at most 1 MiB per read and fails once the link
// is cut or the sender gives up.
type memChunkReader struct {
	ctx      context.Context
	nw       *Network
	from, to uint64
	r        io.Reader
}

func (c *memChunkReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	c.nw.mu.Lock()
	cut := c.nw.cut[[2]uint64{c.from, c.to}] || c.nw.endpoints[c.from] == nil
	c.nw.mu.Unlock()
	if cut {
		return 0, fmt.Errorf("raft: link %x->%x cut during a snapshot", c.from, c.to)
	}
	if len(p) > 1<<20 {
		p = p[:1<<20]
	}
	return c.r.Read(p)
}

// AddPeer implements Transport; the network needs no addresses.
func (t *MemTransport) AddPeer(id uint64, addr string) error { return nil }

// RemovePeer implements Transport.
func (t *MemTransport) RemovePeer(id uint64) {}

// Stop implements Transport: the member drops off the network.
func (t *MemTransport) Stop() error {
	t.nw.mu.Lock()
	defer t.nw.mu.Unlock()
	if t.nw.endpoints[t.id] == t {
		delete(t.nw.endpoints, t.id)
	}
	return nil
}
