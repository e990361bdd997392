package raft

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Every normal entry the node proposes is an envelope: a fixed header that
// identifies the proposal, then the FSM's payload.
//
//	byte 0      envelopeMagic
//	bytes 1-8   proposer's raft ID        (big endian)
//	bytes 9-16  proposer's incarnation    (random per Node start)
//	bytes 17-24 sequence number           (per incarnation)
//	bytes 25-   payload
//
// The ID lets the proposer's waiter be found when the entry is applied on
// the proposer, and lets a duplicate of an applied entry be detected. The
// incarnation makes IDs unique across restarts without storing a counter.
// Configuration-change entries carry the same header in ConfChange.Context,
// followed by the member's address.
const (
	envelopeMagic   = 0xA7
	envelopeHdrSize = 25
)

// proposalID identifies one proposal across the cluster.
type proposalID struct {
	node, incarnation, seq uint64
}

func (p proposalID) isZero() bool { return p == proposalID{} }

func encodeEnvelope(id proposalID, payload []byte) []byte {
	b := make([]byte, envelopeHdrSize+len(payload))
	copy(b[envelopeHdrSize:], payload)
	return frameEnvelope(id, b)
}

// frameEnvelope writes the envelope of id over b's first envelopeHdrSize
// bytes, in front of the payload already behind them, and returns b.
func frameEnvelope(id proposalID, b []byte) []byte {
	b[0] = envelopeMagic
	binary.BigEndian.PutUint64(b[1:], id.node)
	binary.BigEndian.PutUint64(b[9:], id.incarnation)
	binary.BigEndian.PutUint64(b[17:], id.seq)
	return b
}

func decodeEnvelope(b []byte) (proposalID, []byte, error) {
	if len(b) < envelopeHdrSize || b[0] != envelopeMagic {
		return proposalID{}, nil, fmt.Errorf("entry of %d bytes has no proposal header: %w", len(b), ErrBadEntry)
	}
	id := proposalID{
		node:        binary.BigEndian.Uint64(b[1:]),
		incarnation: binary.BigEndian.Uint64(b[9:]),
		seq:         binary.BigEndian.Uint64(b[17:]),
	}
	return id, b[envelopeHdrSize:], nil
}

// Member is one member of the cluster as the membership records it.
type Member struct {
	ID      uint64
	Addr    string
	Learner bool
}

// membership is the part of the replicated state the node keeps itself:
// members with addresses (raft's ConfState has IDs only) and the removed
// IDs, which are refused for ever. It changes only by committed
// configuration changes and travels in snapshots.
type membership struct {
	members map[uint64]Member
	removed map[uint64]bool
}

func newMembership() *membership {
	return &membership{members: map[uint64]Member{}, removed: map[uint64]bool{}}
}

func (m *membership) clone() *membership {
	c := newMembership()
	for k, v := range m.members {
		c.members[k] = v
	}
	for k := range m.removed {
		c.removed[k] = true
	}
	return c
}

func (m *membership) list() []Member {
	out := make([]Member, 0, len(m.members))
	for _, v := range m.members {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// dedup remembers the IDs of the last applied proposals, in apply order. It
// is derived from the log alone (and carried in snapshots), so every member
// makes the same decision about a duplicate and the replicas stay equal.
type dedup struct {
	window int
	ring   []proposalID
	next   int
	seen   map[proposalID]struct{}
}

func newDedup(window int) *dedup {
	return &dedup{window: window, seen: make(map[proposalID]struct{}, window)}
}

// add records id; it returns false when id was already applied.
func (d *dedup) add(id proposalID) bool {
	if _, ok := d.seen[id]; ok {
		return false
	}
	if len(d.ring) < d.window {
		d.ring = append(d.ring, id)
	} else {
		delete(d.seen, d.ring[d.next])
		d.ring[d.next] = id
		d.next = (d.next + 1) % d.window
	}
	d.seen[id] = struct{}{}
	return true
}

// ordered returns the remembered IDs oldest first.
func (d *dedup) ordered() []proposalID {
	if len(d.ring) < d.window {
		return slices.Clone(d.ring)
	}
	return append(slices.Clone(d.ring[d.next:]), d.ring[:d.next]...)
}

// A snapshot's data is a header written by the node followed by the FSM's
// own stream (Save):
//
//	"APRSNAP1"
//	uvarint index, term
//	uvarint #members, then per member: uvarint id, byte learner, string addr
//	uvarint #removed, then uvarint ids
//	uvarint #dedup, then per ID three uvarints
//	FSM data up to the end
//
// The whole file is covered by the size and CRC in the snapshot reference
// kept in raft's Snapshot.Data, checked on open and on receipt.
const snapMagic = "APRSNAP1"

type snapHeader struct {
	index, term uint64
	members     *membership
	dedup       []proposalID
}

func writeSnapHeader(w io.Writer, h snapHeader) error {
	var b []byte
	b = append(b, snapMagic...)
	b = binary.AppendUvarint(b, h.index)
	b = binary.AppendUvarint(b, h.term)
	ms := h.members.list()
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for _, m := range ms {
		b = binary.AppendUvarint(b, m.ID)
		if m.Learner {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendUvarint(b, uint64(len(m.Addr)))
		b = append(b, m.Addr...)
	}
	removed := make([]uint64, 0, len(h.members.removed))
	for id := range h.members.removed {
		removed = append(removed, id)
	}
	slices.Sort(removed)
	b = binary.AppendUvarint(b, uint64(len(removed)))
	for _, id := range removed {
		b = binary.AppendUvarint(b, id)
	}
	b = binary.AppendUvarint(b, uint64(len(h.dedup)))
	for _, id := range h.dedup {
		b = binary.AppendUvarint(b, id.node)
		b = binary.AppendUvarint(b, id.incarnation)
		b = binary.AppendUvarint(b, id.seq)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	return nil
}

// readSnapHeader reads the node's header; br is left at the FSM's data.
func readSnapHeader(br *bufio.Reader) (snapHeader, error) {
	var h snapHeader
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapMagic {
		return h, fmt.Errorf("snapshot header: not a raft snapshot: %w", ErrCorrupt)
	}
	var err error
	u := func() uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = binary.ReadUvarint(br)
		return v
	}
	const maxCount = 1 << 24
	h.index, h.term = u(), u()
	h.members = newMembership()
	n := u()
	if n > maxCount {
		err = errors.New("member count out of range")
	}
	for i := uint64(0); i < n && err == nil; i++ {
		m := Member{ID: u()}
		var lb byte
		if err == nil {
			lb, err = br.ReadByte()
		}
		m.Learner = lb == 1
		l := u()
		if err == nil && l > 4096 {
			err = errors.New("address too long")
		}
		if err == nil {
			a := make([]byte, l)
			_, err = io.ReadFull(br, a)
			m.Addr = string(a)
		}
		h.members.members[m.ID] = m
	}
	n = u()
	if n > maxCount {
		err = errors.New("removed count out of range")
	}
	for i := uint64(0); i < n && err == nil; i++ {
		h.members.removed[u()] = true
	}
	n = u()
	if n > maxCount {
		err = errors.New("dedup count out of range")
	}
	for i := uint64(0); i < n && err == nil; i++ {
		h.dedup = append(h.dedup, proposalID{u(), u(), u()})
	}
	if err != nil {
		return h, fmt.Errorf("snapshot header: %v: %w", err, ErrCorrupt)
	}
	return h, nil
}

// snapRef is what raft's Snapshot.Data holds: not the data (which may be
// huge and is streamed separately) but its size and checksum, so the file
// that holds it can be verified wherever it lands.
type snapRef struct {
	size uint64
	crc  uint32
}

const snapRefMagic = "ASR1"

func (r snapRef) encode() []byte {
	b := make([]byte, 16)
	copy(b, snapRefMagic)
	binary.BigEndian.PutUint64(b[4:], r.size)
	binary.BigEndian.PutUint32(b[12:], r.crc)
	return b
}

func decodeSnapRef(b []byte) (snapRef, error) {
	if len(b) != 16 || string(b[:4]) != snapRefMagic {
		return snapRef{}, fmt.Errorf("snapshot reference of %d bytes is malformed: %w", len(b), ErrCorrupt)
	}
	return snapRef{size: binary.BigEndian.Uint64(b[4:]), crc: binary.BigEndian.Uint32(b[12:])}, nil
}
