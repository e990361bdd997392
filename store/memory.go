package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// MaxChangesPerTransaction bounds the changes of one proposal that Batch
// makes, so that no raft entry grows without limit.
const MaxChangesPerTransaction = 1000

// MemoryStore is the in-memory, indexed cluster state. It is safe for
// concurrent use. See the package documentation for its design.
type MemoryStore struct {
	proposer Proposer

	// db is the state readers get, immutable; readers load it without a
	// lock (current). It is published lazily: a commit leaves its changes
	// in w and sets stale, and the first reader after it publishes them
	// (currentLocked). So a follower that nobody reads between
	// commits changes in place the B-tree nodes it copied at the first of
	// them; while each commit was published, the next copied every node
	// it changed again (docs/architecture.md, "A commit's nodes are
	// copied once"). Restore swaps it whole.
	db atomic.Pointer[dbState]
	// w is the appliers' writer (ApplyBatch, applyLocked), kept from one
	// commit to the next until a reader publishes its state; nil when db
	// is the whole state. Under mu.
	w *dbWriter
	// stale says w holds commits db does not. Set under mu, after the
	// commit's changes and before its index and events; cleared under mu
	// after db is stored.
	stale atomic.Bool
	// index is the commit index of the last applied transaction. Written
	// under mu; read atomically by Index.
	index atomic.Uint64

	// mu serializes applying transactions, publishing their events and
	// registering watchers, so that event order is commit order and a
	// watcher starts exactly between two commits.
	mu       sync.Mutex
	closed   bool
	watchers map[*Watcher]struct{}

	// local holds the actions of this store's proposals in flight, by
	// the nonce their entry carries: applying its own entry, the proposing
	// manager takes them instead of decoding what it has just encoded (a
	// third of the decoding of a three-manager cluster's writes). The
	// actions are the transaction's private copies, as on the direct path.
	// Other replicas decode; a nonce is random, so no other replica's
	// entry is taken for one of ours.
	localMu sync.Mutex
	local   map[uint64][]action

	// perAction is the bytes per change of the last proposal encoded, so
	// that the next one's buffer is allocated once at about its size,
	// not grown two or three times from a guess.
	perAction atomic.Int64
}

// NewMemoryStore returns an empty store. With a nil Proposer, writes are
// applied directly (single manager, tests); otherwise every transaction is
// proposed through p and applied when raft calls Apply.
func NewMemoryStore(p Proposer) *MemoryStore {
	s := &MemoryStore{proposer: p, watchers: make(map[*Watcher]struct{}), local: map[uint64][]action{}}
	s.db.Store(newDB())
	return s
}

// Close closes every watcher and refuses further writes with ErrClosed.
// Reads keep working on the last state.
func (s *MemoryStore) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ws := s.watchers
	s.watchers = nil
	s.mu.Unlock()
	for w := range ws {
		w.stop()
	}
}

// Index returns the commit index of the last applied transaction (the raft
// index once replicated): the Meta.Version of the objects it wrote.
func (s *MemoryStore) Index() uint64 { return s.index.Load() }

// View runs fn on a consistent snapshot of the store, which holds every
// commit applied before View was called. It holds no lock while fn runs:
// writers proceed, and fn does not see their changes. (The first reader
// after a commit takes the apply lock for a moment to publish it.)
func (s *MemoryStore) View(fn func(ReadTx)) {
	fn(readTx{db: s.current()})
}

// ViewShared is View for readers that never modify what they read (they
// count, or encode for the wire): the objects are the stored ones, not
// copies, so a read of every task costs no copy of every task. Modifying
// one corrupts the store for every other reader.
func (s *MemoryStore) ViewShared(fn func(ReadTx)) {
	fn(readTx{db: s.current(), shared: true})
}

// Update runs fn in a transaction and commits its writes as one proposal.
// See UpdateContext.
func (s *MemoryStore) Update(fn func(Tx) error) error {
	return s.UpdateContext(context.Background(), fn)
}

// UpdateContext runs fn in a read-write transaction on a private snapshot of
// the store: fn sees its own writes, nobody else does, and no lock is held
// while it runs. When fn returns an error nothing happens and the error is
// returned as is. When fn returns nil, its writes become one proposal (ctx
// bounds the wait for it) that is validated again and applied all or
// nothing: a writer that committed first in the meantime makes it fail with
// ErrConflict, ErrExist, ErrNameConflict or ErrNotFound.
//
// With a Proposer, an error from Propose other than the store's own
// validation error (a timeout, lost leadership) leaves the local state
// unchanged, but the entry may still commit later, as with any raft
// proposal.
func (s *MemoryStore) UpdateContext(ctx context.Context, fn func(Tx) error) error {
	if s.isClosed() {
		return ErrClosed
	}
	t := s.begin(s.current())
	defer t.abort()
	if err := fn(t); err != nil {
		return err
	}
	if len(t.actions) == 0 {
		return nil
	}
	_, err := s.commit(ctx, t.actions)
	return err
}

func (s *MemoryStore) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// current returns the committed state, publishing the commits the
// appliers' writer holds first. Whoever learnt of a commit (its index,
// its event, its proposal's result) did so after stale was set, so it
// publishes or finds db published.
func (s *MemoryStore) current() *dbState {
	if s.stale.Load() {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.currentLocked()
	}
	return s.db.Load()
}

// currentLocked is current under mu: it makes the appliers' writer's
// state, if it holds commits db does not, the one readers get.
func (s *MemoryStore) currentLocked() *dbState {
	if s.stale.Load() {
		s.db.Store(s.w.publish())
		s.stale.Store(false)
	}
	return s.db.Load()
}

// writerLocked returns the appliers' writer. Under mu.
func (s *MemoryStore) writerLocked() *dbWriter {
	if s.w == nil {
		s.w = s.db.Load().writer()
	}
	return s.w
}

// begin opens a transaction on db. A state is immutable (a writer copies
// only the nodes it changes), so writers never block each other or the
// store while they run.
func (s *MemoryStore) begin(db *dbState) *tx {
	// UTC without a monotonic reading: the time travels in the proposal, so
	// every replica stores exactly the same value.
	return newTx(db, time.Now().UTC())
}

// commit makes actions one proposal, or applies them directly without a
// Proposer, and returns the commit index.
func (s *MemoryStore) commit(ctx context.Context, actions []action) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.proposer == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return 0, ErrClosed
		}
		index := s.index.Load() + 1
		if err := s.applyLocked(index, actions); err != nil {
			return 0, err
		}
		return index, nil
	}
	nonce := rand.Uint64() | 1 // never 0, which means none
	headroom := 0
	framing, framed := s.proposer.(FramingProposer)
	if framed {
		headroom = framing.ProposalHeadroom()
	}
	buf, err := appendProposal(make([]byte, headroom, headroom+s.proposalSizeHint(len(actions))), actions, nonce)
	if err != nil {
		return 0, fmt.Errorf("encode transaction: %w", err)
	}
	data := buf[headroom:]
	if len(actions) > 0 {
		s.perAction.Store(int64(len(data) / len(actions)))
	}
	if l, ok := s.proposer.(SizeLimitedProposer); ok && len(data) > l.MaxProposalSize() {
		return 0, fmt.Errorf("%w: %d changes encode to %d bytes, at most %d", ErrTooLarge, len(actions), len(data), l.MaxProposalSize())
	}
	s.localMu.Lock()
	s.local[nonce] = actions
	s.localMu.Unlock()
	var index uint64
	if framed {
		index, err = framing.ProposeFramed(ctx, buf)
	} else {
		index, err = s.proposer.Propose(ctx, data)
	}
	// Applied or not (a proposal that timed out may still commit: its
	// entry is then decoded like anyone else's).
	s.localMu.Lock()
	delete(s.local, nonce)
	s.localMu.Unlock()
	if err != nil {
		var ae *applyError
		if errors.As(err, &ae) {
			// The entry committed but was refused by validation: the
			// caller wants the validation error, not raft's wrapping.
			return index, ae.err
		}
		return 0, fmt.Errorf("propose transaction: %w", err)
	}
	return index, nil
}

// proposalSizeHint is the capacity to allocate for a proposal of n
// changes: a quarter more than the last proposal's bytes per change, at
// most maxSizeHint (a larger one grows as it is encoded).
func (s *MemoryStore) proposalSizeHint(n int) int {
	per := max(s.perAction.Load(), 240)
	return int(min(int64(n)*(per+per/4)+16, maxSizeHint))
}

const maxSizeHint = 64 << 10

// applyError marks an error that Apply returned because a committed entry
// failed validation, so that commit can tell it from a failed proposal.
type applyError struct{ err error }

func (e *applyError) Error() string { return e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

// Apply applies a committed raft entry: the data of one Propose. Raft calls
// it on every manager, the proposer's included, in log order. It validates
// every change against the committed state (existence, version, name
// uniqueness) exactly as the direct path does, applies all of them or none,
// sets Meta.Version to index on the objects written, and publishes their
// events. The validation error (ErrConflict, ...) is returned for raft to
// hand to the proposer; the store's index advances to index either way, as
// the entry is consumed. Apply is deterministic: replicas that apply the
// same entries hold the same state.
func (s *MemoryStore) Apply(index uint64, data []byte) error {
	actions, decodeErr := s.takeLocal(data), error(nil)
	if actions == nil {
		actions, decodeErr = decodeActions(data)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if cur := s.index.Load(); index <= cur {
		return fmt.Errorf("apply entry %d: store is already at index %d", index, cur)
	}
	if decodeErr != nil {
		s.index.Store(index)
		return fmt.Errorf("apply entry %d: %w", index, decodeErr)
	}
	if err := s.applyLocked(index, actions); err != nil {
		s.index.Store(index)
		return &applyError{err}
	}
	return nil
}

// ApplyBatch applies committed entries in order, each exactly as Apply
// would, and returns each one's error (errs[i] for the entry at
// indexes[i]). It is raft's batch form of Apply (raft.BatchApplier): the
// entries share one writer, so a B-tree node that several of them change
// is copied once, not once per entry, and the new state is made current
// once, when all are applied, before raft answers their proposers (the
// writer goes on to the next batch with it until a reader publishes it).
// A refused entry's changes are undone in the writer; the others stand.
func (s *MemoryStore) ApplyBatch(indexes []uint64, data [][]byte) []error {
	errs := make([]error, len(indexes))
	actions := make([][]action, len(indexes))
	decodeErrs := make([]error, len(indexes))
	for i, d := range data {
		if actions[i] = s.takeLocal(d); actions[i] == nil {
			actions[i], decodeErrs[i] = decodeActions(d)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		for i := range errs {
			errs[i] = ErrClosed
		}
		return errs
	}
	w := s.writerLocked()
	var events []Event
	if len(s.watchers) > 0 {
		events = make([]Event, 0, 2*len(indexes))
	}
	cur, applied := s.index.Load(), 0
	for i, index := range indexes {
		if index <= cur {
			errs[i] = fmt.Errorf("apply entry %d: store is already at index %d", index, cur)
			continue
		}
		cur = index
		if decodeErrs[i] != nil {
			errs[i] = fmt.Errorf("apply entry %d: %w", index, decodeErrs[i])
			continue
		}
		var err error
		if events, err = applyTo(w, index, actions[i], events); err != nil {
			errs[i] = &applyError{err}
			continue
		}
		applied++
	}
	if applied > 0 {
		s.stale.Store(true)
	}
	s.index.Store(cur)
	if len(events) > 0 {
		s.publishLocked(events)
	}
	return errs
}

// takeLocal returns the actions of an entry this store proposed and still
// waits for, once (nil for anyone else's).
func (s *MemoryStore) takeLocal(data []byte) []action {
	n := proposalNonce(data)
	if n == 0 {
		return nil
	}
	s.localMu.Lock()
	defer s.localMu.Unlock()
	a := s.local[n]
	delete(s.local, n)
	return a
}

// key identifies an object across tables.
type key struct {
	kind api.Kind
	id   string
}

// applyLocked validates actions against the committed state and applies them
// at index, all or nothing. It and ApplyBatch are the only code that
// changes the primary database apart from Restore. The action objects
// become the stored objects: they are private copies nobody else holds.
func (s *MemoryStore) applyLocked(index uint64, actions []action) error {
	w := s.writerLocked()
	// Events are only built when someone listens: the common direct-path
	// writer in tests and benchmarks has no watcher.
	var events []Event
	if len(s.watchers) > 0 {
		events = make([]Event, 0, len(actions)+1)
	}
	events, err := applyTo(w, index, actions, events)
	if err != nil {
		return err
	}
	s.stale.Store(true)
	s.index.Store(index)
	if events != nil {
		s.publishLocked(events)
	}
	return nil
}

// applyTo validates actions against w's state and applies them to w at
// index, all or nothing: on an error, w is as it was. It appends the
// actions' events and the commit's to events when events is not nil.
//
// A transaction may write an object several times. Its writer saw the
// object's committed version until its first write and its own writes after
// that, so only an object's first action is checked against the committed
// version; the later ones were checked against the transaction's own writes,
// which this replay reproduces.
func applyTo(w *dbWriter, index uint64, actions []action, events []Event) (out []Event, err error) {
	// Each action is written first and checked against what it replaced
	// (one search per action instead of two): a failed check undoes the
	// transaction's changes in w. An object this transaction already
	// wrote has version index (the committed ones are below it), which
	// tells its later actions from its first. The checks read only the
	// primary and name indexes; the other indexes follow all at once at the
	// end (reindexAll), in parallel for a large transaction.
	n0 := len(events)
	changes := make([]change, 0, len(actions))
	reindexed := false
	defer func() {
		if err != nil {
			w.undo(changes, reindexed)
			if out != nil {
				out = out[:n0]
			}
		}
	}()
	for i := range actions {
		a := &actions[i]
		ki, err := lookupKind(a.kind)
		if err != nil {
			return events, err
		}
		var cur api.Object // what the action replaced or removed
		switch a.op {
		case ActionCreate, ActionUpdate:
			cur = w.putDeferred(ki, a.obj)
			shareParts(w, a.obj, cur)
			changes = append(changes, change{ki: ki, id: a.id, old: cur, obj: a.obj})
		case ActionDelete:
			cur = w.removeDeferred(ki, a.id)
			if cur != nil {
				changes = append(changes, change{ki: ki, id: a.id, old: cur})
			}
		default:
			return events, fmt.Errorf("%s %s: invalid action %d", a.kind, a.id, int(a.op))
		}
		first := cur == nil || cur.GetMeta().Version != index
		var ev Event
		switch a.op {
		case ActionCreate:
			if cur != nil {
				return events, fmt.Errorf("create %s %s: %w", a.kind, a.id, ErrExist)
			}
			if err := w.checkNameWritten(ki, a.obj); err != nil {
				return events, fmt.Errorf("create %s %s: %w", a.kind, a.id, err)
			}
			m := a.obj.GetMeta()
			m.Version = index
			a.obj.SetMeta(m)
			ev = Event{Action: ActionCreate, Object: a.obj, Version: index}
		case ActionUpdate:
			if cur == nil {
				return events, fmt.Errorf("update %s %s: %w", a.kind, a.id, ErrNotFound)
			}
			if first && cur.GetMeta().Version != a.base {
				return events, fmt.Errorf("update %s %s: %w", a.kind, a.id, ErrConflict)
			}
			if err := w.checkNameWritten(ki, a.obj); err != nil {
				return events, fmt.Errorf("update %s %s: %w", a.kind, a.id, err)
			}
			m := a.obj.GetMeta()
			m.Version = index
			m.CreatedAt = cur.GetMeta().CreatedAt
			a.obj.SetMeta(m)
			ev = Event{Action: ActionUpdate, Object: a.obj, Old: cur, Version: index}
		case ActionDelete:
			if cur == nil {
				return events, fmt.Errorf("delete %s %s: %w", a.kind, a.id, ErrNotFound)
			}
			if first && cur.GetMeta().Version != a.base {
				return events, fmt.Errorf("delete %s %s: %w", a.kind, a.id, ErrConflict)
			}
			ev = Event{Action: ActionDelete, Object: cur, Version: index}
		}
		if events != nil {
			events = append(events, ev)
		}
	}
	w.reindexAll(changes)
	reindexed = true
	if err := w.checkPortsHeld(changes); err != nil {
		return events, err
	}
	if err := w.checkAddrsHeld(changes); err != nil {
		return events, err
	}
	if err := w.checkSubnetsFree(changes); err != nil {
		return events, err
	}
	if events != nil {
		events = append(events, Event{Action: ActionCommit, Version: index})
	}
	return events, nil
}
