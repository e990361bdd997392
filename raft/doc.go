// Package raft replicates the managers' state machine (the store) with
// go.etcd.io/raft/v3, keeping the log in append-only segment files, so that losing
// any minority of managers loses no committed write and stops nothing.
//
// It is a building block: it imports no other Apiary package. The swarm
// package wires it to the store: the store's Proposer is a *Node, and the
// Node's FSM is the *store.MemoryStore (Apply, Save, Restore).
//
// # The loop
//
// A Node runs etcd raft's RawNode on one goroutine, the raft loop, which
// alone touches it. The loop ticks every Config.TickInterval, steps
// messages from the transport, takes proposals, and handles each Ready in
// this order:
//
//  1. persist: an incoming snapshot's metadata, the new entries and the
//     hard state, in one write to the log and one fdatasync. Everything
//     that arrived while the previous Ready was being written (every
//     queued proposal and message) is drained into the RawNode first, so
//     one fdatasync carries a whole batch of proposals;
//  2. apply configuration changes to raft and the transport's peer list;
//  3. send the messages, only now: a vote, an acknowledgement or an entry
//     the leader counts as replicated on itself must be durable before
//     anybody hears of it, or a crash could make a member deny what it
//     said;
//  4. hand committed entries to the apply goroutine; Advance.
//
// A Ready that only moves the commit index (raft's MustSync false) is
// written without an fsync: the write must reach the file, because a member
// restarting with a stale commit index replays too few configuration
// changes and could elect itself in a smaller cluster than the real one;
// skipping the fsync halves the leader's fsyncs, and only a machine crash
// (not a process crash) can lose such a write, as in etcd.
//
// The apply goroutine applies committed entries to the FSM in log order,
// answers proposals, and takes snapshots. It is apart from the loop so a
// slow FSM (a large Save) never delays heartbeats and elections.
//
// # Proposals
//
// Propose wraps the payload in a small envelope: a magic byte and a
// proposal ID (proposer's raft ID, a random incarnation chosen at start,
// a sequence number). The proposer registers a waiter under the ID; when
// the apply goroutine applies the entry it finds the waiter and returns the
// index and the FSM's Apply error (a version conflict, say), so Propose
// returns only after the write is visible in the local store.
//
// On a follower the proposal is forwarded to the leader by raft itself
// (MsgProp) and still answered by the local apply, so callers may propose
// on any member; a follower that knows no leader fails at once with a
// *NotLeaderError.
//
// Failures are explicit: whenever the term, the leader or this member's
// role changes, every proposal made before the change fails with
// ErrLostLeadership, queued behind the entries already committed so that a
// proposal that did commit gets its result, not a failure. A deposed
// leader's proposals therefore fail as soon as it steps down (CheckQuorum
// makes a leader cut off from a majority step down after an election
// timeout), not at their deadline. Such a failure is "outcome unknown": the
// entry may still commit under the new leader. It can never commit twice:
// raft commits an entry once, the node never resubmits one, and the apply
// goroutine skips any entry whose proposal ID it applied recently (a
// window of Config.DedupWindow IDs, derived from the log alone and carried
// in snapshots, so every member decides alike).
//
// # Reads
//
// The FSM can be read locally at any time (fast, possibly stale on a
// follower or a deposed leader). LinearizableRead uses raft's ReadIndex:
// the leader confirms with a heartbeat round that it still leads, the
// member waits until it has applied that index, and a read of the FSM then
// reflects every write acknowledged before the call.
//
// # Leadership
//
// Leader and Leadership report the current view; WatchLeadership delivers
// every change on a channel that always holds the latest one. IsLeader is
// true only once the leader has applied an entry of its own term (raft's
// empty entry at election), so leader-only work (the orchestrators) that
// starts on it sees a store holding every committed write.
//
// With Config.FastFailover (default on), a follower whose transport to the
// leader fails outright (connection refused: the leader's process died)
// and that hears nothing from it for two heartbeats forgets it (raft's
// ForgetLeader) and campaigns after a short random delay instead of waiting
// out the election timeout: failover takes about half a second instead of
// one to two. PreVote keeps this from disrupting a leader that is alive:
// members that still hear from it do not grant the pre-vote. A silent
// failure (a partition, a dead machine) still costs the election timeout.
//
// # Storage
//
// DiskStorage keeps the log and the hard state in wal/<seq>.wal, segment
// files written append-only, one write and at most one fdatasync per
// Ready, every record framed with its length and a CRC-32C; the snapshot
// metadata, the member's ID and a "removed" marker in raft.db (bbolt),
// each value framed with a CRC-32C; and snapshot data in
// snap/<term>-<index>.snap files verified by the size and CRC recorded in
// the snapshot metadata. Opening a data dir verifies all of it: bbolt's
// meta pages (a damaged meta page is refused, not silently rolled back
// past: that could un-persist a vote), its free list, the length of the
// file, every log record's checksum, the segments' sequence and the log's
// contiguity, the hard state against the log, and the latest snapshot
// file. A log whose last segment ends in an incomplete record, which only
// a crash during a write no fdatasync completed can leave, is cut back to
// its last whole record; a damaged record followed by an intact one is
// damage, not a torn write, and is refused. A data dir of the first format
// (the log in raft.db) is migrated to this one when it is opened. Damage is an error wrapping ErrCorrupt naming the file and the
// fault; bbolt's panics and faults on damaged pages are turned into such
// errors too. A node restarted from its data dir restores the FSM from the
// latest snapshot and replays the log after it. MemoryStorage is the same
// in memory, for tests.
//
// # Snapshots
//
// Every Config.SnapshotInterval applied entries once they hold as many
// bytes as the last snapshot, or once the entries
// applied since the last snapshot hold Config.SnapshotBytes, or once the
// log has been quiet for Config.SnapshotQuiet after more than
// Config.SnapshotCatchUpBytes were applied, the apply goroutine saves
// the FSM, after a header of its own (index, term, membership with
// addresses, removed IDs, the duplicate-detection window), to a snapshot
// file, records it and compacts the log, keeping
// Config.SnapshotCatchUpEntries entries (at most SnapshotCatchUpBytes of
// them) so a follower slightly behind catches up from the log. The bounds
// in bytes are what bound the memory the log takes: the log since the
// last snapshot is held in memory, and entries of a thousand tasks each
// made 10,000 of them gigabytes. raft's MsgSnap carries only the snapshot's
// metadata and a reference (size, CRC) in Snapshot.Data; the data itself is
// streamed by Transport.SendSnapshot in chunks (1 MiB over gRPC) from the
// file into the recipient's storage, checked against the reference, and
// only then is the MsgSnap given to raft, whose Ready makes the apply
// goroutine hand the file to FSM.Restore as a stream. No message ever holds
// the state. The leader sends snapshots in the background, so a 100 MB
// transfer does not stall heartbeats. A snapshot raft wants to send must
// include the recipient in its configuration (else the recipient ignores
// it): when the latest one predates a member (a member added after the log
// was compacted), raft is told to retry and a fresh snapshot is taken.
//
// # Membership
//
// Changes are proposed on the leader, one at a time, and refused when
// unsafe, with an error that says why:
//
//   - AddMember adds a learner, waits until it has caught up (by snapshot
//     if the log was compacted), then promotes it. Adding an empty voter
//     directly would raise the quorum at once: with one member already
//     down, a fourth empty voter would stall every write until it caught
//     up. The new member starts with an empty storage and Config.Join
//     (the members' addresses) and waits to be contacted.
//   - RemoveMember and DemoteMember refuse to remove or demote the last
//     voter, and refuse a change after which the voters this leader heard
//     from within an election timeout would not form a majority of the
//     remaining voters (ErrQuorumLoss). Removing or demoting the leader
//     first transfers leadership to the most up-to-date reachable voter,
//     then proposes the change through the new leader.
//   - TransferLeadership hands leadership to a given voter (or the best
//     one) and waits for it.
//   - A removed member's ID is recorded in the replicated membership and
//     refused for ever: members drop its messages and answer that it was
//     removed, and it then stops and marks its data dir, which refuses to
//     start again. Rejoining takes a new ID and an empty data dir. AddMember
//     refuses a removed ID. This is what keeps a member that was removed
//     while it was down, and later comes back with its old log, from
//     disturbing the cluster.
//
// Config.ForceNewCluster recovers from the loss of a majority: it rewrites
// one surviving member's state into a one-member cluster (etcd's
// --force-new-cluster): configuration changes removing every other member
// are appended as committed entries in a new, higher term, and the node
// starts as the sole voter with every write it holds. Unlike etcd it keeps
// the entries past its stored commit index too: that index may lag the
// cluster's (see above), and every write acknowledged to a client that the
// survivor holds must survive; an entry of unknown outcome may thereby
// commit, as any such proposal may. The other members' IDs become removed
// IDs. On a clean Stop the node records its latest commit index.
//
// # Transports
//
// Transport has two implementations. GRPCTransport carries messages
// between processes on a hand-declared gRPC service with raw-byte frames
// (one long-lived stream per peer, plus a streaming call per snapshot); it
// takes a *tls.Config or gRPC credentials for mutual TLS, and an Authorize
// hook to check the sender's claimed raft ID against its certificate.
// Network is an in-memory network for tests: its transports can drop,
// delay, partition and heal links.
//
// etcd raft's logs go to the configured *slog.Logger.
package raft
