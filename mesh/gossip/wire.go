package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The wire format is hand-written rather than msgpack or protobuf because
// every field is bounded as it is read: a length is checked against its
// bound before anything is allocated, so a hostile peer holding the gossip
// key cannot make a receiver allocate more than the message it sent.
//
// message  = type(1) body
// entry    = network(s8) table(s8) owner(s8) key(s8) epoch(u64) version(u64)
//            floor(u64) flags(1) value(b16) certFP(32) sig(b8)
// batch    = ncerts(u16) {owner(s8) nder(1) {der(b16)}} nentries(u32) {entry reapInMillis(u32)}
//            nfloors(u16) {entry}
// request  = from(s8) flags(1)
// reply    = from(s8) batch
// s8 and b8 are a 1-byte length then bytes, b16 a 2-byte one.

const (
	msgEntry   byte = 1 // one entry, gossiped
	msgBatch   byte = 2 // certificates and entries: push/pull state, replies
	msgRequest byte = 3 // ask a node for its certificate and entries
	msgReply   byte = 4 // a node's answer with all its entries: from(s8) batch
)

const (
	flagDeleted   byte = 1
	flagWantCerts byte = 1
	flagWantAll   byte = 2

	// signContext separates entry signatures from anything else the node
	// key signs (TLS handshakes sign other contexts).
	signContext = "apiary-gossip-entry-v2\x00"
)

var errMalformed = errors.New("malformed message")

// wireEntry is an entry as signed by its owner and relayed by everyone.
type wireEntry struct {
	network, table, owner, key string
	// epoch is the owner's start time (unix ns): a restarted owner's
	// entries replace all of its previous run's, whatever their versions.
	epoch   uint64
	version uint64
	// floor is the owner's floor when it signed the entry: every entry of
	// its epoch with a version at or below it is deleted or superseded
	// (see state).
	floor   uint64
	deleted bool
	value   []byte
	certFP  [32]byte // SHA-256 of the owner's leaf certificate
	sig     []byte
	// reapIn is a tombstone's remaining life, carried in batches only.
	reapIn time.Duration
}

type entryID struct{ network, table, owner, key string }

func (e *wireEntry) id() entryID { return entryID{e.network, e.table, e.owner, e.key} }

// newer reports whether e supersedes o (epoch first, then version).
func (e *wireEntry) newer(o *wireEntry) bool {
	if e.epoch != o.epoch {
		return e.epoch > o.epoch
	}
	return e.version > o.version
}

func (e *wireEntry) public() Entry {
	return Entry{Network: e.network, Table: e.table, Owner: e.owner, Key: e.key, Value: e.value, Version: e.version}
}

// signedBytes is what the owner signs: every field but the signature.
func (e *wireEntry) signedBytes() []byte {
	b := make([]byte, 0, len(signContext)+len(e.network)+len(e.table)+len(e.owner)+len(e.key)+len(e.value)+64)
	b = append(b, signContext...)
	return e.appendFields(b)
}

func (e *wireEntry) appendFields(b []byte) []byte {
	b = appendS8(b, e.network)
	b = appendS8(b, e.table)
	b = appendS8(b, e.owner)
	b = appendS8(b, e.key)
	b = binary.BigEndian.AppendUint64(b, e.epoch)
	b = binary.BigEndian.AppendUint64(b, e.version)
	b = binary.BigEndian.AppendUint64(b, e.floor)
	var flags byte
	if e.deleted {
		flags |= flagDeleted
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.value)))
	b = append(b, e.value...)
	return append(b, e.certFP[:]...)
}

func (e *wireEntry) appendWire(b []byte) []byte {
	b = e.appendFields(b)
	b = append(b, byte(len(e.sig)))
	return append(b, e.sig...)
}

func encodeEntryMsg(e *wireEntry) []byte {
	return e.appendWire(append(make([]byte, 0, 256+len(e.value)), msgEntry))
}

// certChain is a node's certificate chain as it travels.
type certChain struct {
	owner string
	der   [][]byte
}

type batch struct {
	certs   []certChain
	entries []*wireEntry
	// floors are entries sent only for the floor they carry, signed: for
	// each owner, the entry that raised its floor last (state.owner.proof),
	// so that a node joining learns floors from push/pull even when the
	// entry that carried one was compacted away since.
	floors []*wireEntry
}

func encodeBatch(bt *batch) []byte {
	b := []byte{msgBatch}
	b = binary.BigEndian.AppendUint16(b, uint16(len(bt.certs)))
	for _, c := range bt.certs {
		b = appendS8(b, c.owner)
		b = append(b, byte(len(c.der)))
		for _, d := range c.der {
			b = binary.BigEndian.AppendUint16(b, uint16(len(d)))
			b = append(b, d...)
		}
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(bt.entries)))
	for _, e := range bt.entries {
		b = e.appendWire(b)
		b = binary.BigEndian.AppendUint32(b, uint32(min(e.reapIn.Milliseconds(), 1<<32-1)))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(bt.floors)))
	for _, e := range bt.floors {
		b = e.appendWire(b)
	}
	return b
}

// encodeReply is a node's answer to a request for all its entries.
func encodeReply(from string, bt *batch) []byte {
	return append(appendS8([]byte{msgReply}, from), encodeBatch(bt)[1:]...)
}

func decodeReply(b []byte) (string, *batch, error) {
	d := &decoder{b: b}
	from := d.s8("replier", MaxNameLen)
	if d.err != nil {
		return "", nil, d.err
	}
	bt, err := decodeBatch(d.b)
	return from, bt, err
}

type request struct {
	from  string
	flags byte
}

func encodeRequest(r request) []byte {
	return append(appendS8([]byte{msgRequest}, r.from), r.flags)
}

func appendS8(b []byte, s string) []byte { return append(append(b, byte(len(s))), s...) }

// decoder reads bounded fields; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{errMalformed}, args...)...)
	}
}

func (d *decoder) take(n int, field string) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("%s: %d bytes wanted, %d left", field, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(field string) byte {
	v := d.take(1, field)
	if v == nil {
		return 0
	}
	return v[0]
}

func (d *decoder) u16(field string) int {
	v := d.take(2, field)
	if v == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(v))
}

func (d *decoder) u32(field string) uint32 {
	v := d.take(4, field)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (d *decoder) u64(field string) uint64 {
	v := d.take(8, field)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// s8 reads a string of 1 to max bytes.
func (d *decoder) s8(field string, max int) string {
	n := int(d.u8(field))
	if d.err == nil && (n == 0 || n > max) {
		d.fail("%s: length %d not in 1..%d", field, n, max)
	}
	return string(d.take(n, field))
}

func (d *decoder) entry() *wireEntry {
	e := &wireEntry{}
	e.network = d.s8("network", MaxNameLen)
	e.table = d.s8("table", MaxNameLen)
	e.owner = d.s8("owner", MaxNameLen)
	e.key = d.s8("key", MaxKeyLen)
	e.epoch = d.u64("epoch")
	e.version = d.u64("version")
	e.floor = d.u64("floor")
	if d.err == nil && e.version <= e.floor {
		d.fail("version %d not above the floor %d", e.version, e.floor)
	}
	e.deleted = d.u8("flags")&flagDeleted != 0
	n := d.u16("value length")
	if d.err == nil && n > MaxValueSize {
		d.fail("value: %d bytes, more than %d", n, MaxValueSize)
	}
	e.value = append([]byte(nil), d.take(n, "value")...)
	copy(e.certFP[:], d.take(32, "certificate digest"))
	n = int(d.u8("signature length"))
	if d.err == nil && (n == 0 || n > MaxSignatureSize) {
		d.fail("signature: length %d not in 1..%d", n, MaxSignatureSize)
	}
	e.sig = append([]byte(nil), d.take(n, "signature")...)
	if d.err != nil {
		return nil
	}
	return e
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

func decodeEntryMsg(b []byte) (*wireEntry, error) {
	d := &decoder{b: b}
	e := d.entry()
	return e, d.done()
}

func decodeBatch(b []byte) (*batch, error) {
	if len(b) > MaxBatchBytes {
		return nil, fmt.Errorf("%w: batch of %d bytes, more than %d", errMalformed, len(b), MaxBatchBytes)
	}
	d := &decoder{b: b}
	bt := &batch{}
	nc := d.u16("certificate count")
	if d.err == nil && nc > MaxNodes {
		d.fail("%d certificate chains, more than %d", nc, MaxNodes)
	}
	for i := 0; i < nc && d.err == nil; i++ {
		c := certChain{owner: d.s8("certificate owner", MaxNameLen)}
		nd := int(d.u8("chain length"))
		if d.err == nil && (nd == 0 || nd > MaxChainLen) {
			d.fail("chain length %d not in 1..%d", nd, MaxChainLen)
		}
		for j := 0; j < nd && d.err == nil; j++ {
			n := d.u16("certificate length")
			if d.err == nil && (n == 0 || n > MaxCertSize) {
				d.fail("certificate length %d not in 1..%d", n, MaxCertSize)
			}
			c.der = append(c.der, append([]byte(nil), d.take(n, "certificate")...))
		}
		bt.certs = append(bt.certs, c)
	}
	ne := d.u32("entry count")
	if d.err == nil && ne > MaxEntries {
		d.fail("%d entries, more than %d", ne, MaxEntries)
	}
	for i := uint32(0); i < ne && d.err == nil; i++ {
		e := d.entry()
		reap := d.u32("reap time")
		if e != nil {
			e.reapIn = time.Duration(reap) * time.Millisecond
			bt.entries = append(bt.entries, e)
		}
	}
	nf := d.u16("floor count")
	if d.err == nil && nf > maxStateFloors {
		d.fail("%d floors, more than %d", nf, maxStateFloors)
	}
	for i := 0; i < nf && d.err == nil; i++ {
		if e := d.entry(); e != nil {
			bt.floors = append(bt.floors, e)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return bt, nil
}

func decodeRequest(b []byte) (request, error) {
	d := &decoder{b: b}
	r := request{from: d.s8("requester", MaxNameLen), flags: d.u8("flags")}
	return r, d.done()
}
