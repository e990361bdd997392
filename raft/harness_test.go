package raft

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/internal/testutil"
)

// kvFSM is the test state machine: a map of keys to values plus the
// history of applied writes, so tests can check that every acknowledged
// write is there exactly once.
type kvFSM struct {
	mu      sync.Mutex
	data    map[string]string
	history []kvWrite
	index   uint64
	// batches counts the ApplyBatch calls of more than one entry: the
	// node hands a BatchApplier what raft commits together.
	batches int
}

type kvWrite struct {
	index      uint64
	key, value string
}

var errKVRefused = errors.New("kv: value refused")

func newKV() *kvFSM { return &kvFSM{data: map[string]string{}} }

func kvOp(key, value string) []byte { return []byte(key + "=" + value) }

func (f *kvFSM) Apply(index uint64, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyLocked(index, data)
}

// ApplyBatch makes kvFSM a BatchApplier, as the store is: every cluster
// test goes through the node's batch path. (applyOnly hides it.)
func (f *kvFSM) ApplyBatch(indexes []uint64, data [][]byte) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(indexes) > 1 {
		f.batches++
	}
	errs := make([]error, len(indexes))
	for i := range indexes {
		errs[i] = f.applyLocked(indexes[i], data[i])
	}
	return errs
}

// applyOnly is a kvFSM without ApplyBatch: the node applies its entries
// one Apply at a time.
type applyOnly struct{ f *kvFSM }

func (a applyOnly) Apply(index uint64, data []byte) error { return a.f.Apply(index, data) }
func (a applyOnly) Save(w io.Writer) error                { return a.f.Save(w) }
func (a applyOnly) Restore(r io.Reader) error             { return a.f.Restore(r) }

func (f *kvFSM) applyLocked(index uint64, data []byte) error {
	if index <= f.index {
		return fmt.Errorf("kv: apply %d after %d", index, f.index)
	}
	f.index = index
	k, v, ok := strings.Cut(string(data), "=")
	if !ok {
		return fmt.Errorf("kv: bad op %q", data)
	}
	if strings.HasPrefix(v, "refuse") {
		return errKVRefused
	}
	f.data[k] = v
	f.history = append(f.history, kvWrite{index, k, v})
	return nil
}

func putString(w *bufio.Writer, s string) {
	var b [binary.MaxVarintLen64]byte
	w.Write(b[:binary.PutUvarint(b[:], uint64(len(s)))])
	w.WriteString(s)
}

func readString(r *bufio.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

func (f *kvFSM) Save(w io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	bw := bufio.NewWriter(w)
	var b [binary.MaxVarintLen64]byte
	u := func(v uint64) { bw.Write(b[:binary.PutUvarint(b[:], v)]) }
	u(f.index)
	keys := make([]string, 0, len(f.data))
	for k := range f.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	u(uint64(len(keys)))
	for _, k := range keys {
		putString(bw, k)
		putString(bw, f.data[k])
	}
	u(uint64(len(f.history)))
	for _, h := range f.history {
		u(h.index)
		putString(bw, h.key)
		putString(bw, h.value)
	}
	return bw.Flush()
}

func (f *kvFSM) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	index, err := binary.ReadUvarint(br)
	if err != nil {
		return err
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return err
	}
	data := make(map[string]string, n)
	for i := uint64(0); i < n; i++ {
		k, err := readString(br)
		if err != nil {
			return err
		}
		v, err := readString(br)
		if err != nil {
			return err
		}
		data[k] = v
	}
	n, err = binary.ReadUvarint(br)
	if err != nil {
		return err
	}
	hist := make([]kvWrite, 0, n)
	for i := uint64(0); i < n; i++ {
		var h kvWrite
		if h.index, err = binary.ReadUvarint(br); err != nil {
			return err
		}
		if h.key, err = readString(br); err != nil {
			return err
		}
		if h.value, err = readString(br); err != nil {
			return err
		}
		hist = append(hist, h)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data, f.history, f.index = data, hist, index
	return nil
}

func (f *kvFSM) get(k string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.data[k]
	return v, ok
}

func (f *kvFSM) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.data)
}

func (f *kvFSM) writes() []kvWrite {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.history)
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("RAFT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return testutil.DiscardLogger()
}

type transportKind string

const (
	memNet  transportKind = "mem"
	grpcNet transportKind = "grpc"
)

// cluster runs members in one process over the in-memory network or gRPC
// on loopback, each with its own data dir.
type cluster struct {
	t       testing.TB
	kind    transportKind
	net     *Network
	base    string
	ids     []uint64
	nodes   map[uint64]*Node
	fsms    map[uint64]*kvFSM
	addrs   map[uint64]string
	grpcTrs map[uint64]*GRPCTransport
	tune    func(*Config)
	// plain makes the members started from now on apply one entry at a
	// time (applyOnly).
	plain   bool
	mu      sync.Mutex
	cut     map[[2]uint64]bool // gRPC partitions
	srvOpts []grpc.ServerOption
}

// partition cuts the links between the groups (both transports).
func (c *cluster) partition(groups ...[]uint64) {
	if c.kind == memNet {
		c.net.Partition(groups...)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, g := range groups {
		for j, h := range groups {
			if i != j {
				for _, a := range g {
					for _, b := range h {
						c.cut[[2]uint64{a, b}] = true
					}
				}
			}
		}
	}
}

func (c *cluster) heal() {
	if c.kind == memNet {
		c.net.Heal()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = map[[2]uint64]bool{}
}

func (c *cluster) blocked(from, to uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut[[2]uint64{from, to}]
}

func (c *cluster) newGRPC(addr string) (*GRPCTransport, error) {
	tr, err := NewGRPCTransport(GRPCConfig{ListenAddr: addr, Logger: testLogger(c.t), ServerOptions: c.srvOpts})
	if err != nil {
		return nil, err
	}
	f := c.blocked
	tr.blocked.Store(&f)
	return tr, nil
}

// testConfig is DefaultConfig with a faster clock, so elections take a
// few hundred milliseconds.
func testConfig() Config {
	c := DefaultConfig()
	c.TickInterval = 20 * time.Millisecond
	return c
}

func newCluster(t testing.TB, kind transportKind, n int, tune func(*Config), srvOpts ...grpc.ServerOption) *cluster {
	t.Helper()
	c := &cluster{
		srvOpts: srvOpts,
		t:       t, kind: kind, base: t.TempDir(), tune: tune,
		nodes: map[uint64]*Node{}, fsms: map[uint64]*kvFSM{}, addrs: map[uint64]string{},
		grpcTrs: map[uint64]*GRPCTransport{}, cut: map[[2]uint64]bool{},
	}
	if kind == memNet {
		c.net = NewNetwork()
	}
	var peers []Peer
	for i := 1; i <= n; i++ {
		id := uint64(i)
		c.ids = append(c.ids, id)
		addr := fmt.Sprintf("mem-%d", id)
		if kind == grpcNet {
			tr, err := c.newGRPC("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			c.grpcTrs[id] = tr
			addr = tr.Addr()
		}
		c.addrs[id] = addr
		peers = append(peers, Peer{ID: id, Addr: addr})
	}
	for _, id := range c.ids {
		c.start(id, peers)
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *cluster) transport(id uint64) Transport {
	if c.kind == memNet {
		return c.net.Transport(id)
	}
	if tr := c.grpcTrs[id]; tr != nil {
		delete(c.grpcTrs, id)
		return tr
	}
	var tr *GRPCTransport
	var err error
	// The port was just freed by the stopped member: retry briefly.
	for i := 0; i < 100; i++ {
		tr, err = c.newGRPC(c.addrs[id])
		if err == nil {
			return tr
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("restart transport of %x: %v", id, err)
	return nil
}

func (c *cluster) config(id uint64, peers []Peer) Config {
	cfg := testConfig()
	cfg.ID = id
	cfg.Addr = c.addrs[id]
	cfg.DataDir = filepath.Join(c.base, fmt.Sprintf("m%d", id))
	cfg.Peers = peers
	cfg.Logger = testLogger(c.t)
	if c.tune != nil {
		c.tune(&cfg)
	}
	return cfg
}

// start starts member id from its data dir with a fresh FSM.
func (c *cluster) start(id uint64, peers []Peer) *Node {
	c.t.Helper()
	n, err := c.startErr(id, peers, nil)
	if err != nil {
		c.t.Fatalf("start member %x: %v", id, err)
	}
	return n
}

func (c *cluster) startErr(id uint64, peers []Peer, edit func(*Config)) (*Node, error) {
	cfg := c.config(id, peers)
	fsm := newKV()
	cfg.FSM = fsm
	if c.plain {
		cfg.FSM = applyOnly{fsm}
	}
	cfg.Transport = c.transport(id)
	if edit != nil {
		edit(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		cfg.Transport.Stop()
		return nil, err
	}
	c.mu.Lock()
	c.nodes[id], c.fsms[id] = n, fsm
	c.mu.Unlock()
	return n, nil
}

func (c *cluster) node(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *cluster) fsm(id uint64) *kvFSM {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fsms[id]
}

func (c *cluster) running() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []uint64
	for _, id := range c.ids {
		if c.nodes[id] != nil {
			out = append(out, id)
		}
	}
	return out
}

// kill stops member id (its data dir stays).
func (c *cluster) kill(id uint64) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n != nil {
		n.Stop()
	}
}

func (c *cluster) restart(id uint64) *Node {
	c.t.Helper()
	c.kill(id)
	return c.start(id, nil)
}

// restartAll stops every member, then starts each from its data dir.
func (c *cluster) restartAll() {
	c.t.Helper()
	for _, id := range c.ids {
		c.kill(id)
	}
	for _, id := range c.ids {
		c.start(id, nil)
	}
}

func (c *cluster) stopAll() {
	for _, id := range c.ids {
		c.kill(id)
	}
	if c.net != nil {
		c.net.Close()
	}
	for _, tr := range c.grpcTrs {
		tr.Stop()
	}
}

// leader waits until exactly one of the members in ids leads (with its FSM
// current) and every running member of ids agrees, and returns it.
func (c *cluster) leader(ids []uint64, timeout time.Duration) uint64 {
	c.t.Helper()
	var lead uint64
	testutil.Eventually(c.t, timeout, fmt.Sprintf("a leader among %v", ids), func() bool {
		lead = 0
		for _, id := range ids {
			n := c.node(id)
			if n == nil {
				continue
			}
			if n.IsLeader() {
				if lead != 0 {
					return false
				}
				lead = id
			}
		}
		if lead == 0 {
			return false
		}
		for _, id := range ids {
			if n := c.node(id); n != nil && n.Leader() != lead {
				return false
			}
		}
		return true
	})
	return lead
}

func (c *cluster) put(id uint64, key, value string) (uint64, error) {
	n := c.node(id)
	if n == nil {
		return 0, ErrStopped
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.Propose(ctx, kvOp(key, value))
}

func (c *cluster) mustPut(id uint64, key, value string) uint64 {
	c.t.Helper()
	idx, err := c.put(id, key, value)
	if err != nil {
		if len(value) > 40 {
			value = value[:40] + "..."
		}
		c.t.Fatalf("put %s=%s on %x: %v", key, value, id, err)
	}
	return idx
}

// converged waits until every member in ids holds the same state as the
// first one and has applied at least index.
func (c *cluster) converged(ids []uint64, index uint64, timeout time.Duration) {
	c.t.Helper()
	testutil.Eventually(c.t, timeout, fmt.Sprintf("members %v to converge at index >= %d", ids, index), func() bool {
		var ref []kvWrite
		for i, id := range ids {
			n := c.node(id)
			if n == nil || n.AppliedIndex() < index {
				return false
			}
			w := c.fsm(id).writes()
			if i == 0 {
				ref = w
			} else if !slices.Equal(ref, w) {
				return false
			}
		}
		return true
	})
}

func without(ids []uint64, drop ...uint64) []uint64 {
	return slices.DeleteFunc(slices.Clone(ids), func(x uint64) bool { return slices.Contains(drop, x) })
}
