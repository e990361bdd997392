// Package store holds the cluster state in memory, indexed: one table per
// object kind (cluster, node, service, task, network) with indexes by ID and
// ID prefix, name, and, for tasks, service, node, slot, desired and observed
// state and network; nodes by role; services by network. See By for the
// selectors.
//
// # Tables
//
// Every index is a copy-on-write B-tree of github.com/tidwall/btree
// (btree.go). The primary index's entries hold the stored object; a
// secondary index's hold its key and the object's ID, and a Find by it
// reads each object from the primary index of the same state. A state of
// all the tables is immutable: taking a snapshot is copying a few
// pointers, and a writer copies the trees of a table it changes (Copy,
// O(1)) and then the nodes it changes,
// each once per transaction however many changes it makes (there is no
// cache of writable nodes to overflow), changing in place the nodes it
// made. The appliers (raft's Apply and ApplyBatch) keep their writer from
// one commit to the next and publish its state to readers only when one
// asks (MemoryStore.current): a manager that nobody reads between commits,
// a follower, copies a node once and then changes it in place at every
// commit, where publishing each commit made the next copy it again.
// Entries keep the first 24 bytes of their keys inline (8 of the
// index key, 16 of the ID; a primary index has smaller entries of its
// own), so comparisons rarely read the strings; a writer keeps path hints
// per index and appends past the last entry without a search, so changes
// that go through keys in order search little. A write touches the
// primary index and the entries whose key changed, nothing in the indexes
// where no key did: a task's status update changes one of its nine.
// Applying a transaction writes the primary (and unique-name) indexes
// action by action, as the checks read them, and then the other indexes,
// one goroutine per index for a large transaction.
//
// # Reads
//
// View runs a function on a consistent snapshot, which holds every commit
// applied before it began: readers take no lock and never wait for
// writers, except the first reader after a commit, which takes the apply
// lock to publish it. Every object the store
// hands out, from a read or in an event, is a deep copy; the stored objects
// are immutable and shared by all snapshots.
//
// # Writes, proposals and apply-time validation
//
// Update runs its function on a private snapshot (snapshots are O(1)), so
// the function sees its own writes and takes no lock. Its
// writes are recorded as actions (kind, create/update/delete, object, the
// version the writer saw) and, when the function returns nil, become one
// proposal. With a Proposer (raft), the proposal is encoded and proposed
// without holding any lock, and raft calls Apply with every committed entry
// on every manager, the proposer included. Without one, the same
// validate-and-apply code runs at once, under the store's apply lock, with
// the next index; nothing is encoded.
//
// The writes are checked twice. The check at transaction time gives fast,
// precise errors. The check at apply time decides: many writers run
// concurrently, each against its own snapshot, so two of them can pass the
// first check with changes that cannot both hold (two updates of the same
// object, two objects with one name). The log serializes them, and Apply
// validates each entry against the committed state it lands on, applying
// all of its actions or none and returning the error (ErrConflict, ErrExist,
// ErrNameConflict, ErrNotFound) that raft hands back to the loser. Because
// Apply depends only on the committed state and the entry, every replica
// reaches the same decision and the same state. Only the objects a
// transaction writes are checked; a transaction that read other objects to
// decide is not protected against their changing meanwhile.
//
// # Versions
//
// The store counts commits: its index is the raft index of the last
// applied entry (without raft, each commit takes the next integer), and
// every object written by a commit gets Meta.Version = that index. An
// update or a delete must carry (for Delete: read in the same transaction)
// the version currently stored, or it fails with ErrConflict: optimistic
// concurrency. Inside one transaction an object keeps the version the
// transaction started from, so it can be updated more than once. Create
// sets CreatedAt and UpdatedAt, Update sets UpdatedAt, both to the
// transaction's time, which travels in the proposal so that every replica
// stores the same value.
//
// # Watching
//
// Each commit publishes, in commit order, one event per change (updates
// carry the old object too) and then an ActionCommit event, all with the
// commit index as Version; Restore publishes one ActionRestore event.
// Commit versions increase but may skip: an entry refused at apply time
// consumes its raft index and publishes nothing.
// ViewAndWatch reads a snapshot and subscribes at the same point, so the
// reader sees every change exactly once. Every watcher has an unbounded
// queue drained into its channel by its own goroutine: a slow reader can
// never make a writer wait (which would stall raft's apply loop and with it
// the cluster) and never loses an event (which would leave a reconciler's
// view silently wrong); lagging costs memory only. Close a watcher when
// done; closing the store closes them all.
//
// # Snapshots
//
// Save streams the state object by object with its index; Restore reads
// such a stream, validates it completely aside and swaps it in atomically,
// so a torn or corrupted stream leaves the store as it was.
package store
