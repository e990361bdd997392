package gossip

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Bounds on everything that comes from the wire. A message that breaks one
// is dropped and counted (Stats.OverLimit or Stats.Malformed); a local call
// that would break one fails with an error naming the field.
//
// The sizes are chosen so that one signed entry always fits in one
// memberlist UDP packet: memberlist gives a gossiped message 1,400 bytes
// (UDPBufferSize) less 29 of AES-GCM framing, 2 of compound header, 2 of
// compound length and 1 of message type, that is 1,366 bytes, and we keep
// maxCertBroadcast = 1,300 of them so that a few bytes of memberlist's own
// state can share the packet. The largest entry message is
// 1 (type) + 3×(1+MaxNameLen) + (1+MaxKeyLen) + 24 (epoch, version, floor)
// + 1 (flags) + (2+MaxValueSize) + 32 (certificate digest)
// + (1+MaxSignatureSize) = 1 + 195 + 129 + 24 + 1 + 770 + 32 + 145
// = 1,297 bytes (TestTheLargestEntryFitsInAGossipPacket checks it, and
// TestTheLargestEntryGoesByGossip sends one). An entry that did not fit
// would sit in the broadcast queue forever and reach others only by
// push/pull.
const (
	// MaxNameLen bounds a network name, a table name and a node ID.
	MaxNameLen = 64
	// MaxKeyLen bounds an entry key (a task ID is 25 characters).
	MaxKeyLen = 128
	// MaxValueSize bounds an entry value: what the 1,300 bytes leave once
	// the largest names, key and signature are counted (771), rounded down. An endpoint record (mesh/endpoint) with a 63-character
	// service name, four named ports and two networks with an alias each
	// is 477 bytes; each further port adds 20 to 90 bytes (with a name) and
	// each network about 30 plus 3 to 66 per alias, so 512 bytes, this
	// bound before, left room for one more port; 768 leaves room for about
	// seven.
	MaxValueSize = 768
	// MaxSignatureSize bounds a signature: ECDSA P-256/P-384 (≤ 104 bytes
	// DER) and Ed25519 (64) fit; RSA (256+ bytes) does not and is refused.
	MaxSignatureSize = 144

	// MaxEntriesPerNode bounds the live entries one node may own: a node
	// runs at most a few hundred tasks, each with an entry per network it
	// is attached to. A Put beyond it fails with ErrOverLimit.
	MaxEntriesPerNode = 4096
	// MaxTombstonesPerNode bounds the tombstones of one owner that any
	// member holds, whatever the owner's churn: a node deleting faster
	// than ReapTime reaps compacts its own tombstones behind a floor (see
	// state) once it holds ownTombstones of them, so members that learn of
	// a compaction late, or reap later than the owner, stay under this.
	// A tombstone beyond it is dropped (Stats.OverLimit); the owner's next
	// floor removes the entry it deleted. So a member holds at most
	// MaxEntriesPerNode + MaxTombstonesPerNode records of one owner.
	MaxTombstonesPerNode = 1024
	// MaxEntries bounds all records held (live entries and tombstones):
	// the whole state travels in one memberlist push/pull, which memberlist
	// caps at 20 MiB (MaxBatchBytes): 14,000 records of at most 1,300
	// bytes each (the message above plus 4 bytes of reap time) are 18.2 MB,
	// and maxStateFloors floors 1.3 MB, which leaves 1.4 MB for the
	// certificate chains (about 700 bytes per node). Larger clusters need a
	// sync per network (as Docker's NetworkDB does), which this package
	// does not do. (It was 16,384 with values of at most 512 bytes.)
	MaxEntries = 14000
	// MaxNetworks bounds the distinct networks that have entries.
	MaxNetworks = 1024
	// MaxTablesPerNetwork bounds the distinct tables in one network.
	MaxTablesPerNetwork = 16
	// MaxNodes bounds the owners tracked (entries, certificates, pending
	// entries, nodes seen leaving).
	MaxNodes = 10000

	// MaxChainLen bounds a certificate chain (leaf, intermediates).
	MaxChainLen = 4
	// MaxCertSize bounds one DER certificate.
	MaxCertSize = 4096
	// MaxCertsPerNode bounds the certificates kept per node: its current
	// one and those it held before renewals, until its entries are re-signed.
	MaxCertsPerNode = 4

	// MaxPending bounds the entries held while their owner is not yet
	// known as alive or their certificate has not arrived.
	MaxPending = 4096
	// MaxBatchBytes bounds a push/pull state or a direct reply; memberlist
	// itself refuses more than 20 MiB.
	MaxBatchBytes = 20 << 20

	// maxConcurrentSends bounds the goroutines answering or sending
	// requests for certificates and entries; beyond it requests are
	// skipped (push/pull repairs what they would have fetched).
	maxConcurrentSends = 16
	// requestEvery is the least time between two requests to one owner.
	requestEvery = time.Second

	// ownTombstones is how many tombstones of its own a node holds before
	// it compacts the oldest half of them (Member.compactOwn). Half of
	// MaxTombstonesPerNode: a member that has not yet learnt the floor of
	// the last compaction, or reaps a little later than the owner, holds
	// up to twice what the owner does.
	ownTombstones = MaxTombstonesPerNode / 2
	// staleGrace is how long a member waits, after its owner's floor rose,
	// for the re-published versions of the live entries it holds below the
	// floor to arrive by gossip before it asks the owner for its entries
	// (state.stale): a direct request per member to a compacting node
	// that gossip normally makes unnecessary.
	staleGrace = 5 * time.Second
	// maxStateFloors bounds the floors a push/pull state carries besides
	// its records. One is needed only for an owner none of whose records
	// held was signed since its last compaction (they were reaped or
	// compacted), so there are few; the records carry the others.
	maxStateFloors = 1024
)

// checkName checks a network, table or node name.
func checkName(field, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("gossip: %s is empty", field)
	case len(s) > MaxNameLen:
		return fmt.Errorf("gossip: %s is %d bytes, more than the %d allowed", field, len(s), MaxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("gossip: %s %q is not valid UTF-8", field, s)
	}
	return nil
}

// checkEntry checks what a local Put or Delete is given.
func checkEntry(network, table, key string, value []byte) error {
	if err := checkName("network", network); err != nil {
		return err
	}
	if err := checkName("table", table); err != nil {
		return err
	}
	switch {
	case key == "":
		return fmt.Errorf("gossip: key is empty")
	case len(key) > MaxKeyLen:
		return fmt.Errorf("gossip: key is %d bytes, more than the %d allowed", len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("gossip: key %q is not valid UTF-8", key)
	case len(value) > MaxValueSize:
		return fmt.Errorf("gossip: value is %d bytes, more than the %d allowed", len(value), MaxValueSize)
	}
	return nil
}
