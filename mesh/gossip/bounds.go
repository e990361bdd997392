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
// memberlist UDP packet (1,400 bytes, less 29 bytes of AES-GCM framing and
// memberlist's own headers): 3×MaxNameLen + MaxKeyLen + MaxValueSize +
// MaxSignatureSize + 32 (certificate digest) + 32 (versions, lengths)
// = 192 + 128 + 512 + 144 + 64 = 1,040 bytes. An entry that did not fit
// would sit in the broadcast queue forever and reach others only by push/pull.
const (
	// MaxNameLen bounds a network name, a table name and a node ID.
	MaxNameLen = 64
	// MaxKeyLen bounds an entry key (a task ID is 25 characters).
	MaxKeyLen = 128
	// MaxValueSize bounds an entry value: an endpoint record (service,
	// VIP, ports, task address, health) is a few hundred bytes.
	MaxValueSize = 512
	// MaxSignatureSize bounds a signature: ECDSA P-256/P-384 (≤ 104 bytes
	// DER) and Ed25519 (64) fit; RSA (256+ bytes) does not and is refused.
	MaxSignatureSize = 144

	// MaxEntriesPerNode bounds the entries (live and tombstones) one node
	// may own: a node runs at most a few hundred tasks, each with an entry
	// per network it is attached to.
	MaxEntriesPerNode = 4096
	// MaxEntries bounds all entries held: the whole state travels in one
	// memberlist push/pull, which memberlist caps at 20 MiB; 16,384 entries
	// of at most ~1.1 KB each stay under it. Larger clusters need a sync per
	// network (as Docker's NetworkDB does), which this package does not do.
	MaxEntries = 16384
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
