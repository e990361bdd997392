package raft

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Fuzz targets of the package's own encodings: the proposal envelope of
// every entry, the snapshot header and reference, the membership replayed
// from configuration changes at start, and raft.db as it is read back.

// FuzzEnvelope: an entry either has no proposal header (ErrBadEntry) or
// decodes to an ID and payload that encode back to the same bytes.
func FuzzEnvelope(f *testing.F) {
	f.Add(encodeEnvelope(proposalID{node: 1, incarnation: 2, seq: 3}, []byte(`{"v":1,"a":[]}`)))
	f.Add(encodeEnvelope(proposalID{node: ^uint64(0), incarnation: 0, seq: 1 << 40}, nil))
	f.Add(encodeEnvelope(proposalID{node: 7}, []byte("127.0.0.1:4242")))
	f.Add([]byte{envelopeMagic})
	f.Add(make([]byte, envelopeHdrSize))
	f.Add([]byte(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, payload, err := decodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrBadEntry) {
				t.Fatalf("decodeEnvelope: %v is not ErrBadEntry", err)
			}
			return
		}
		if again := encodeEnvelope(id, payload); !bytes.Equal(again, b) {
			t.Fatalf("entry %x decodes to %+v and %q, which encode to %x", b, id, payload, again)
		}
	})
}

// FuzzSnapRef: a snapshot reference decodes only from its exact encoding.
func FuzzSnapRef(f *testing.F) {
	f.Add(snapRef{size: 1 << 20, crc: 0xdeadbeef}.encode())
	f.Add(snapRef{}.encode())
	f.Add([]byte("ASR1"))
	f.Add([]byte("ASR2\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeSnapRef(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeSnapRef: %v is not ErrCorrupt", err)
			}
			return
		}
		if again := r.encode(); !bytes.Equal(again, b) {
			t.Fatalf("reference %x decodes to %+v, which encodes to %x", b, r, again)
		}
	})
}

// FuzzSnapHeader reads the header of a snapshot as a restoring member
// does. A damaged header is ErrCorrupt; a header that reads leaves the
// reader at the FSM's data, and writes back to bytes that read to the same
// header, which then write identically.
func FuzzSnapHeader(f *testing.F) {
	mem := newMembership()
	mem.members[1] = Member{ID: 1, Addr: "127.0.0.1:4242"}
	mem.members[0xabcdef] = Member{ID: 0xabcdef, Addr: "[::1]:4243", Learner: true}
	mem.removed[9] = true
	full := snapHeader{index: 1234, term: 7, members: mem, dedup: []proposalID{{1, 2, 3}, {1, 2, 4}, {0xabcdef, 9, 1}}}
	for _, h := range []snapHeader{full, {members: newMembership()}} {
		var b bytes.Buffer
		if err := writeSnapHeader(&b, h); err != nil {
			f.Fatal(err)
		}
		b.WriteString(`{"apiary_store":1,"index":1234}`)
		f.Add(b.Bytes())
	}
	f.Add([]byte(snapMagic + "\x01\x01\xff\xff\xff\xff\x0f"))
	f.Add([]byte(snapMagic + "\x00\x00\x01\x01\x00\xff\x7f"))
	f.Add([]byte("APRSNAP0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		h, err := readSnapHeader(br)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("readSnapHeader: %v is not ErrCorrupt", err)
			}
			return
		}
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(b, rest) {
			t.Fatalf("the reader is not left at the FSM's data")
		}
		var w bytes.Buffer
		if err := writeSnapHeader(&w, h); err != nil {
			t.Fatal(err)
		}
		h2, err := readSnapHeader(bufio.NewReader(bytes.NewReader(w.Bytes())))
		if err != nil {
			t.Fatalf("a written header does not read: %v", err)
		}
		if h2.index != h.index || h2.term != h.term || !slices.Equal(h2.dedup, h.dedup) ||
			!equalMembers(h2.members, h.members) {
			t.Fatalf("header %+v written and read is %+v", h, h2)
		}
		var w2 bytes.Buffer
		if err := writeSnapHeader(&w2, h2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.Bytes(), w2.Bytes()) {
			t.Fatal("one header writes two ways")
		}
	})
}

func equalMembers(a, b *membership) bool {
	return slices.Equal(a.list(), b.list()) && len(a.removed) == len(b.removed) && func() bool {
		for id := range a.removed {
			if !b.removed[id] {
				return false
			}
		}
		return true
	}()
}

// FuzzReplayMembership replays a log of configuration changes as a member
// does at start, before raft runs. The membership (IDs with addresses) and
// the ConfState it replays alongside must agree: raft would otherwise
// start with one set of peers and the transport with another.
//
// Each three bytes of input are one change: its type (any value, known or
// not), the member ID (a small space, so that changes meet), and whether
// the context carries an address.
func FuzzReplayMembership(f *testing.F) {
	f.Add([]byte{0, 1, 1, 0, 2, 1, 2, 3, 1, 1, 2, 0})
	f.Add([]byte{3, 1, 1, 0, 1, 1, 3, 1, 0, 2, 1, 0})
	f.Add([]byte{0, 1, 1, 9, 1, 1})
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		st := NewMemoryStorage()
		var ents []*raftpb.Entry
		for i := 0; i+2 < len(data) && len(ents) < 64; i += 3 {
			id := uint64(data[i+1] % 8)
			cc := &raftpb.ConfChange{Type: raftpb.ConfChangeType(int32(data[i]) % 6).Enum(), NodeId: new(id)}
			switch data[i+2] % 3 {
			case 1:
				cc.Context = encodeEnvelope(proposalID{node: id, seq: uint64(i)}, fmt.Appendf(nil, "10.0.0.%d:4242", id))
			case 2:
				cc.Context = data[i : i+3] // not an envelope
			}
			b, err := proto.Marshal(cc)
			if err != nil {
				t.Fatal(err)
			}
			idx := uint64(len(ents) + 1)
			ents = append(ents, &raftpb.Entry{Index: new(idx), Term: new(uint64(1)), Type: raftpb.EntryConfChange.Enum(), Data: b})
		}
		if err := st.Append(ents); err != nil {
			t.Fatal(err)
		}
		st.SetHardState(&raftpb.HardState{Term: new(uint64(1)), Commit: new(uint64(len(ents)))})
		mem, cs, err := replayMembership(st, newMembership())
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		voters := map[uint64]bool{}
		for _, v := range cs.GetVoters() {
			voters[v] = true
		}
		learners := map[uint64]bool{}
		for _, v := range cs.GetLearners() {
			if voters[v] {
				t.Fatalf("member %d is both voter and learner", v)
			}
			learners[v] = true
		}
		if len(mem.members) != len(voters)+len(learners) {
			t.Fatalf("membership %v, configuration voters %v learners %v", mem.list(), cs.GetVoters(), cs.GetLearners())
		}
		for id, m := range mem.members {
			if m.Learner && !learners[id] || !m.Learner && !voters[id] {
				t.Fatalf("member %+v, configuration voters %v learners %v", m, cs.GetVoters(), cs.GetLearners())
			}
		}
	})
}

// FuzzDiskStorage writes a raft.db that bbolt itself finds intact, with the
// package's values in it (hard state, snapshot metadata and the log, built
// from the input or taken from it as raw bytes, framed with a right or a
// wrong checksum), and opens it. What loads must be a log raft can use:
// contiguous, with the entries and terms written, a commit index within
// it. What does not load must fail with ErrCorrupt, and never by a
// recovered panic: the file's pages are sound, so a panic is this
// package's (or etcd raft's) on the values.
func FuzzDiskStorage(f *testing.F) {
	f.Add(uint64(1), []byte{1, 1, 2}, uint64(3), uint64(0), uint64(0), byte(0), []byte(nil), []byte(nil))
	f.Add(uint64(5), []byte{2, 2, 3}, uint64(6), uint64(4), uint64(2), byte(0), []byte(nil), []byte(nil))
	f.Add(uint64(3), []byte{1, 2, 2, 2}, uint64(5), uint64(4), uint64(2), byte(0), []byte(nil), []byte(nil))
	f.Add(uint64(3), []byte{1, 2, 2, 2}, uint64(9), uint64(8), uint64(2), byte(0), []byte(nil), []byte(nil))
	f.Add(uint64(2), []byte{1}, uint64(0), uint64(0), uint64(0), byte(0), []byte(nil), []byte(nil))
	f.Add(uint64(1), []byte{1, 1}, uint64(1), uint64(0), uint64(0), byte(1|2), []byte{0x08, 0x01, 0x10, 0x02}, []byte{0x0a, 0x04, 0x10, 0x05, 0x18, 0x01})
	f.Add(uint64(1), []byte{1, 1}, uint64(1), uint64(1), uint64(1), byte(4), []byte(nil), []byte(nil))
	f.Add(uint64(1), []byte{1, 1}, uint64(1), uint64(0), uint64(0), byte(8|16), []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, first uint64, terms []byte, commit, snapIndex, snapTerm uint64, mode byte, rawHS, rawSnap []byte) {
		if len(terms) > 64 {
			terms = terms[:64]
		}
		dir := t.TempDir()
		ents := make([]*raftpb.Entry, len(terms))
		for i, term := range terms {
			ents[i] = &raftpb.Entry{Index: new(first + uint64(i)), Term: new(uint64(term)), Type: raftpb.EntryNormal.Enum(), Data: []byte{byte(i)}}
		}
		hs := rawHS
		if mode&1 == 0 {
			hs = mustMarshal(t, &raftpb.HardState{Term: new(uint64(255)), Commit: new(commit)})
		}
		snap := rawSnap
		if mode&2 == 0 && snapIndex > 0 {
			data := []byte("snapshot data")
			if err := os.MkdirAll(filepath.Join(dir, "snap"), 0o700); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "snap", fmt.Sprintf("%016x-%016x.snap", snapTerm, snapIndex))
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if mode&4 != 0 {
				data = append(data, '!') // the file is not what the metadata says
			}
			ref := snapRef{size: uint64(len(data)), crc: crc32c(data)}
			snap = mustMarshal(t, &raftpb.Snapshot{Data: ref.encode(), Metadata: &raftpb.SnapshotMetadata{
				Index: new(snapIndex), Term: new(snapTerm), ConfState: &raftpb.ConfState{Voters: []uint64{1}}}})
		}
		frameOf := func(b []byte, damaged bool) []byte {
			v := frame(b)
			if damaged {
				v[0] ^= 1
			}
			return v
		}
		writeRaftDB(t, filepath.Join(dir, "raft.db"), func(meta, log *bolt.Bucket) error {
			if err := meta.Put(keyVersion, []byte{diskFormatBolt}); err != nil {
				return err
			}
			if err := meta.Put(keyID, frameOf(binary.BigEndian.AppendUint64(nil, 1), false)); err != nil {
				return err
			}
			if len(hs) > 0 {
				if err := meta.Put(keyHardState, frameOf(hs, mode&8 != 0)); err != nil {
					return err
				}
			}
			if len(snap) > 0 {
				if err := meta.Put(keySnapshot, frameOf(snap, false)); err != nil {
					return err
				}
			}
			for i, e := range ents {
				if err := log.Put(key(e.GetIndex()), frameOf(mustMarshal(t, e), mode&16 != 0 && i == len(ents)-1)); err != nil {
					return err
				}
			}
			return nil
		})
		s, err := OpenDiskStorage(dir)
		if err != nil {
			if strings.Contains(err.Error(), "bbolt file is damaged (") {
				t.Fatalf("opening a sound bbolt file panicked: %v", err)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("OpenDiskStorage: %v is not ErrCorrupt", err)
			}
			return
		}
		defer s.Close()
		checkLoadedLog(t, s, ents)
	})
}

// checkLoadedLog: the storage's log is contiguous, holds the entries
// written (those not before its first index), and commits within it; its
// snapshot names the data file that is there.
func checkLoadedLog(t *testing.T, s *DiskStorage, written []*raftpb.Entry) {
	t.Helper()
	fi, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	li, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if fi > li+1 {
		t.Fatalf("first index %d after last %d", fi, li)
	}
	if _, err := s.Term(fi - 1); err != nil {
		t.Fatalf("no term for the index before the first (%d): %v", fi-1, err)
	}
	var got []*raftpb.Entry
	if fi <= li {
		if got, err = s.Entries(fi, li+1, 1<<62); err != nil {
			t.Fatalf("entries %d..%d: %v", fi, li, err)
		}
	}
	if uint64(len(got)) != li-fi+1 {
		t.Fatalf("%d entries for %d..%d", len(got), fi, li)
	}
	byIndex := map[uint64]*raftpb.Entry{}
	for _, e := range written {
		byIndex[e.GetIndex()] = e
	}
	for i, e := range got {
		if e.GetIndex() != fi+uint64(i) {
			t.Fatalf("entry %d has index %d", fi+uint64(i), e.GetIndex())
		}
		if w := byIndex[e.GetIndex()]; w == nil || w.GetTerm() != e.GetTerm() || !bytes.Equal(w.GetData(), e.GetData()) {
			t.Fatalf("entry %d is not the one written", e.GetIndex())
		}
	}
	// A snapshot is what raft sends a follower that fell behind: it must
	// name its data file.
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if si, st := snapIndexTerm(snap); si > 0 {
		if _, err := decodeSnapRef(snap.GetData()); err != nil {
			t.Fatalf("snapshot %d: %v", si, err)
		}
		rc, err := s.OpenSnapshot(si, st)
		if err != nil {
			t.Fatalf("snapshot %d (term %d) loaded without its file: %v", si, st, err)
		}
		rc.Close()
	}
	hs, _, err := s.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if hs.GetCommit() > li {
		t.Fatalf("commit index %d beyond the log's end %d", hs.GetCommit(), li)
	}
}

// writeRaftDB writes a bbolt file with the storage's two buckets, filled
// by fill.
func writeRaftDB(t *testing.T, path string, fill func(meta, log *bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		log, err := tx.CreateBucket(bucketEntries)
		if err != nil {
			return err
		}
		return fill(meta, log)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
