package raft

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// FSM is the replicated state machine: the store (*store.MemoryStorage
// satisfies it). The node calls its methods from one goroutine, in log
// order; it never calls them concurrently with each other.
type FSM interface {
	// Apply applies the payload of one committed proposal at index. It is
	// called on every member, the proposer included, and must be
	// deterministic. Its error is handed to the proposer's Propose (and
	// ignored elsewhere); the entry counts as consumed either way.
	Apply(index uint64, data []byte) error
	// Save writes the whole state as of the last applied entry.
	Save(w io.Writer) error
	// Restore replaces the whole state with a stream written by Save.
	Restore(r io.Reader) error
}

// BatchApplier is an FSM that applies several committed entries at once:
// the node hands it the normal entries of each batch raft commits (up to a
// configuration change), and answers their proposers once it returns.
// ApplyBatch must do exactly what Apply would do for each entry, in order,
// and return each one's error (errs[i] for indexes[i], data[i]); what the
// entries changed must be visible to readers when it returns. An FSM whose
// per-entry cost has a part it can share (the store copies a B-tree node
// once for the batch, not once per entry) implements it.
type BatchApplier interface {
	ApplyBatch(indexes []uint64, data [][]byte) (errs []error)
}

// Snapshotter is an FSM that can take its state as of the last applied
// entry at once, cheaply, and write it later: the node then writes
// snapshots in the background while it goes on applying entries, so a
// large state's snapshot does not stall the writes behind it. The store is
// one (its states are immutable).
type Snapshotter interface {
	// Snapshot takes the state now (between two Applies) and returns
	// what writes it as Save would.
	Snapshot() (write func(io.Writer) error, err error)
}

// Peer is a member of a cluster: its raft ID and the address its transport
// listens on.
type Peer struct {
	ID   uint64
	Addr string
}

// Config configures a Node. Start from DefaultConfig.
type Config struct {
	// ID is this member's raft ID: non-zero, unique in the cluster, never
	// reused after the member was removed.
	ID uint64
	// Addr is this member's own transport address, recorded in the
	// membership when this member bootstraps a cluster.
	Addr string

	// FSM receives committed entries. It must be empty: the node restores
	// it from the latest snapshot and replays the log on start.
	FSM FSM
	// Transport carries messages between members. The node starts it and
	// stops it with itself.
	Transport Transport
	// DataDir holds the durable state (raft.db, wal/ and snap/). Ignored when
	// Storage is set.
	DataDir string
	// Storage overrides DataDir: NewMemoryStorage for tests, or a
	// DiskStorage opened by the caller.
	Storage Storage
	// Encryption seals what the storage of DataDir writes (the log and
	// the snapshot files) and opens what it reads; the zero value writes
	// plaintext. See OpenEncryptedDiskStorage. Ignored when Storage is
	// set.
	Encryption Encryption

	// Peers bootstraps a new cluster when the storage is empty: every
	// initial member must be started with the same list (itself included).
	// Leave empty to join an existing cluster: the node then waits until a
	// leader adds it with AddMember and contacts it. Ignored when the
	// storage already holds state.
	Peers []Peer
	// Join lists the current members' addresses for a member joining an
	// existing cluster (empty storage, no Peers; the leader adds it with
	// AddMember). They are only used to reach the members until this
	// member receives the membership through raft; the leader's address is
	// needed to answer it at all.
	Join []Peer
	// ForceNewCluster rewrites the stored membership to this member alone
	// before starting, keeping every committed entry (disaster recovery
	// from one surviving member: Swarm's --force-new-cluster). The other
	// members become removed IDs.
	ForceNewCluster bool

	// TickInterval is raft's logical clock: election and heartbeat
	// timeouts are counted in ticks.
	TickInterval time.Duration
	// ElectionTick: a follower that hears nothing from a leader for a
	// random time in [ElectionTick, 2*ElectionTick) ticks starts an
	// election.
	ElectionTick int
	// HeartbeatTick: the leader's heartbeat period in ticks.
	HeartbeatTick int
	// PreVote makes a would-be candidate first ask whether it could win,
	// so a member coming back from a partition does not depose a healthy
	// leader by bumping the term.
	PreVote bool
	// CheckQuorum makes a leader that has not heard from a majority for an
	// election timeout step down, which fails its pending proposals instead
	// of letting them wait on a minority.
	CheckQuorum bool

	// SnapshotInterval: a snapshot is taken every this many applied
	// entries, and the log before it compacted, once those entries also
	// hold as many bytes as the last snapshot (a large state is not
	// rewritten for a few small entries: the cost of snapshots per byte
	// written stays the same as the state grows; SnapshotBytes bounds the
	// log).
	SnapshotInterval uint64
	// SnapshotBytes: a snapshot is also taken once the entries applied
	// since the last one hold this many bytes. The log since the last
	// snapshot is kept in memory (and in wal/): counting entries alone
	// let 10,000 entries of a thousand tasks each stay there, gigabytes.
	// Zero means DefaultSnapshotBytes.
	SnapshotBytes uint64
	// SnapshotQuiet: once nothing has been applied for this long, a
	// snapshot is taken if the entries since the last one hold more than
	// SnapshotCatchUpBytes, so that a cluster at rest keeps no more log
	// than a snapshot leaves (after a burst of writes, the removal of a
	// large service say). Zero means DefaultSnapshotQuiet.
	SnapshotQuiet time.Duration
	// ReleaseMemoryWhenQuiet returns the process's freed memory to the
	// operating system after that quiet snapshot (debug.FreeOSMemory):
	// Go's scavenger otherwise gives it back over minutes and keeps up to
	// twice the live heap, so a leader that held 100,000 tasks kept ~80 MB
	// after their removal instead of ~60. It costs a garbage collection, at
	// most once per quiet period after SnapshotCatchUpBytes of writes: once
	// per burst.
	ReleaseMemoryWhenQuiet bool
	// SnapshotCatchUpEntries: entries kept in the log behind a snapshot so
	// that a follower slightly behind catches up from the log rather than
	// by a full snapshot.
	SnapshotCatchUpEntries uint64
	// SnapshotCatchUpBytes bounds those entries' bytes as well: fewer
	// are kept when they are large. Zero means DefaultSnapshotCatchUpBytes.
	SnapshotCatchUpBytes uint64
	// MaxSizePerMsg bounds the entries of one append message (bytes).
	MaxSizePerMsg uint64
	// ProposalWait: when the leader's last batch of proposals held at
	// least 4, it waits up to this long for as many again before stepping
	// the next batch into raft, so that under load one fdatasync and one
	// append per follower carry more writes (a leader synced ~3 times as
	// often as its followers, ~7 writes each, and an fdatasync costs
	// ~70 µs of CPU here; docs/benchmarks.md, issue 14). A lone writer
	// never waits: its batches hold one. Zero turns it off.
	ProposalWait time.Duration
	// MaxEntrySize bounds one proposal (bytes, its envelope included):
	// larger ones are refused with ErrEntryTooLarge before they reach the
	// log. Raft always sends at least one entry per append message, so
	// this bound, with MaxSizePerMsg, is what bounds a message between
	// members (MaxFrameSize), and so what a member must be willing to
	// receive.
	MaxEntrySize uint64
	// MaxInflightMsgs bounds the append messages in flight to a follower.
	MaxInflightMsgs int
	// MaxUncommittedEntriesSize bounds the leader's uncommitted log
	// (bytes); proposals beyond it are refused. 0 means no limit.
	MaxUncommittedEntriesSize uint64
	// SnapshotChunkSize is the size of the pieces a snapshot is streamed
	// in. Transports may use their own.
	SnapshotChunkSize int
	// DedupWindow: how many recent proposal IDs are remembered to detect
	// an entry that committed twice.
	DedupWindow int
	// FastFailover makes followers that see the leader's transport fail
	// (connection refused, not mere silence) forget it and hold an election
	// at once instead of waiting out the election timeout. PreVote still
	// protects a healthy leader. See the package documentation.
	FastFailover bool

	// Logger receives the node's and etcd raft's logs. Nil: slog.Default().
	Logger *slog.Logger
}

// DefaultMaxEntrySize is the default Config.MaxEntrySize: 8 MiB, several
// times the largest transaction the store writes in normal operation (a
// thousand tasks of a few KiB each), and small enough that a member never
// has to buffer a message of hundreds of megabytes from a peer.
const DefaultMaxEntrySize = 8 << 20

// MaxEntrySizeLimit is the largest MaxEntrySize a configuration may set.
const MaxEntrySizeLimit = 64 << 20

// MaxFrameSize is the largest message a member of this configuration sends
// to another: the larger of MaxSizePerMsg and MaxEntrySize (an append
// message holds entries up to MaxSizePerMsg, but at least one, however
// large), plus the framing of the message and of each entry in it (at most
// a few bytes an entry; half the payload covers entries of any size a
// proposal can have), plus a snapshot chunk's worth of slack.
func (c Config) MaxFrameSize() int {
	payload := max(c.MaxSizePerMsg, c.MaxEntrySize)
	chunk := uint64(max(c.SnapshotChunkSize, 64<<10))
	return int(payload + payload/2 + chunk)
}

// Defaults of the byte bounds on the log (see Config).
const (
	DefaultSnapshotBytes        = 64 << 20
	DefaultSnapshotQuiet        = 5 * time.Second
	DefaultSnapshotCatchUpBytes = 4 << 20
)

// DefaultConfig returns the defaults of the design (etcd's timing, Swarm's
// snapshot policy): 100 ms tick, election after 10 ticks, heartbeat every
// tick, PreVote and CheckQuorum on, a snapshot every 10,000 entries (once
// they hold as many bytes as the last snapshot) keeping 500 for slow
// followers; and bounds in bytes besides: a snapshot once the log since
// the last holds 64 MiB (or 4 MiB after 5 s of quiet, then
// returning freed memory to the system), keeping at most 4 MiB for slow
// followers.
func DefaultConfig() Config {
	return Config{
		TickInterval:           100 * time.Millisecond,
		ElectionTick:           10,
		HeartbeatTick:          1,
		PreVote:                true,
		CheckQuorum:            true,
		SnapshotInterval:       10000,
		SnapshotBytes:          DefaultSnapshotBytes,
		SnapshotQuiet:          DefaultSnapshotQuiet,
		ReleaseMemoryWhenQuiet: true,
		SnapshotCatchUpEntries: 500,
		SnapshotCatchUpBytes:   DefaultSnapshotCatchUpBytes,
		MaxSizePerMsg:          1 << 20,
		ProposalWait:           300 * time.Microsecond,
		MaxEntrySize:           DefaultMaxEntrySize,
		MaxInflightMsgs:        256,
		SnapshotChunkSize:      1 << 20,
		DedupWindow:            10000,
		FastFailover:           true,
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, errors.New("ID must be non-zero"))
	}
	if c.FSM == nil {
		errs = append(errs, errors.New("FSM is required"))
	}
	if c.Transport == nil {
		errs = append(errs, errors.New("Transport is required"))
	}
	if c.Storage == nil && c.DataDir == "" {
		errs = append(errs, errors.New("DataDir or Storage is required"))
	}
	seen := map[uint64]bool{}
	for _, p := range c.Peers {
		if p.ID == 0 || seen[p.ID] {
			errs = append(errs, fmt.Errorf("Peers: ID %x is zero or repeated", p.ID))
		}
		seen[p.ID] = true
	}
	if len(c.Peers) > 0 && !seen[c.ID] {
		errs = append(errs, fmt.Errorf("Peers must include this member (%x)", c.ID))
	}
	errs = append(errs, c.tuning()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raft: invalid config: %w", err)
	}
	return nil
}

// CheckTuning fills in the defaults of the settings that do not name the
// member (timing, sizes, snapshots), as NewNode does, and checks them. A
// program that sets the member's identity, storage and transport later
// (swarm.NodeConfig) checks the rest with it before it starts anything.
func (c *Config) CheckTuning() error {
	if err := errors.Join(c.tuning()...); err != nil {
		return fmt.Errorf("raft: invalid config: %w", err)
	}
	return nil
}

// tuning fills in the defaults of the member-independent settings and
// returns what is wrong with them.
func (c *Config) tuning() []error {
	var errs []error
	if c.ProposalWait < 0 || c.ProposalWait > c.TickInterval {
		errs = append(errs, fmt.Errorf("ProposalWait %v must be between 0 and TickInterval (%v)", c.ProposalWait, c.TickInterval))
	}
	if c.TickInterval <= 0 {
		errs = append(errs, fmt.Errorf("TickInterval %v must be positive", c.TickInterval))
	}
	if c.HeartbeatTick <= 0 || c.ElectionTick <= c.HeartbeatTick {
		errs = append(errs, fmt.Errorf("ElectionTick (%d) must be greater than HeartbeatTick (%d) > 0", c.ElectionTick, c.HeartbeatTick))
	}
	if c.SnapshotInterval == 0 {
		errs = append(errs, errors.New("SnapshotInterval must be positive"))
	}
	if c.MaxInflightMsgs <= 0 {
		errs = append(errs, errors.New("MaxInflightMsgs must be positive"))
	}
	if c.SnapshotChunkSize <= 0 {
		c.SnapshotChunkSize = 1 << 20
	}
	if c.SnapshotBytes == 0 {
		c.SnapshotBytes = DefaultSnapshotBytes
	}
	if c.SnapshotQuiet <= 0 {
		c.SnapshotQuiet = DefaultSnapshotQuiet
	}
	if c.SnapshotCatchUpBytes == 0 {
		c.SnapshotCatchUpBytes = DefaultSnapshotCatchUpBytes
	}
	if c.MaxEntrySize == 0 {
		c.MaxEntrySize = DefaultMaxEntrySize
	}
	if c.MaxEntrySize <= envelopeHdrSize || c.MaxEntrySize > MaxEntrySizeLimit {
		errs = append(errs, fmt.Errorf("MaxEntrySize %d must be in (%d, %d]", c.MaxEntrySize, envelopeHdrSize, MaxEntrySizeLimit))
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 10000
	}
	return errs
}
