package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/apiary-io/apiary/internal/wire"
	"github.com/apiary-io/apiary/swarm/api"
)

// The proposal format. A raft entry of the store is one transaction's
// actions. Format 2, written since issue 14, is binary: every follower
// decodes every write, and JSON made that a fifth of a three-manager
// cluster's CPU. Objects are encoded by internal/wire, which keeps what
// JSON gave the log (fields by name, so another version's fields are
// skipped; times with their offset; task states by name) at a quarter of
// the cost; deletes carry only the ID, since the object is read back from
// the committed state.
//
//	byte 0      formatBinary (0xB2; a JSON entry of format 1 starts with '{')
//	bytes 1-8   nonce, little endian (0: none)
//	uvarint     number of actions, then per action:
//	  byte      op (Action)
//	  uvarint   len(kind), kind
//	  uvarint   base version
//	  delete:   uvarint len(id), id
//	  others:   the object (wire.Append of it)
//
// Format 1, JSON, is still read: logs and snapshots written before hold it
// (decodeJSONActions).
const formatBinary = 0xB2

// nonceEnd is where a binary proposal's nonce ends.
const nonceEnd = 9

func encodeActions(actions []action) ([]byte, error) { return encodeProposal(actions, 0) }

// encodeProposal returns the format-2 entry of actions.
func encodeProposal(actions []action, nonce uint64) ([]byte, error) {
	return appendProposal(make([]byte, 0, 256*len(actions)+16), actions, nonce)
}

// appendProposal appends the format-2 entry of actions to buf.
func appendProposal(buf []byte, actions []action, nonce uint64) ([]byte, error) {
	buf = append(buf, formatBinary)
	buf = binary.LittleEndian.AppendUint64(buf, nonce)
	buf = binary.AppendUvarint(buf, uint64(len(actions)))
	for _, a := range actions {
		buf = append(buf, byte(a.op))
		buf = binary.AppendUvarint(buf, uint64(len(a.kind)))
		buf = append(buf, a.kind...)
		buf = binary.AppendUvarint(buf, a.base)
		if a.op == ActionDelete {
			buf = binary.AppendUvarint(buf, uint64(len(a.id)))
			buf = append(buf, a.id...)
			continue
		}
		var err error
		if buf, err = wire.Append(buf, a.obj); err != nil {
			return nil, fmt.Errorf("%s %s %s: %w", a.op, a.kind, a.id, err)
		}
	}
	return buf, nil
}

// proposalNonce reads the nonce of a proposal that has one, without
// decoding the rest; 0 when there is none. Only binary proposals are
// looked at: the proposer writes no other.
func proposalNonce(data []byte) uint64 {
	if len(data) < nonceEnd || data[0] != formatBinary {
		return 0
	}
	return binary.LittleEndian.Uint64(data[1:nonceEnd])
}

// decodeActions decodes an entry of either format.
func decodeActions(data []byte) ([]action, error) {
	if len(data) > 0 && data[0] == formatBinary {
		return decodeBinaryActions(data)
	}
	return decodeJSONActions(data)
}

// decodeBinaryActions decodes a format-2 entry. Every count and length is
// checked against the bytes left.
func decodeBinaryActions(data []byte) ([]action, error) {
	if len(data) < nonceEnd {
		return nil, fmt.Errorf("decode proposal: %d bytes, too short", len(data))
	}
	d := data[nonceEnd:]
	u := func() (uint64, error) {
		v, n := binary.Uvarint(d)
		if n <= 0 {
			return 0, errors.New("bad varint")
		}
		d = d[n:]
		return v, nil
	}
	str := func() (string, error) {
		n, err := u()
		if err != nil {
			return "", err
		}
		if n > uint64(len(d)) {
			return "", fmt.Errorf("length %d exceeds the %d bytes left", n, len(d))
		}
		s := string(d[:n])
		d = d[n:]
		return s, nil
	}
	n, err := u()
	if err != nil {
		return nil, fmt.Errorf("decode proposal: action count: %w", err)
	}
	// An action takes at least 4 bytes: op, kind, base, an ID or an object.
	if n > uint64(len(d))/4 {
		return nil, fmt.Errorf("decode proposal: %d actions in %d bytes", n, len(d))
	}
	out := make([]action, n)
	for i := range out {
		if len(d) == 0 {
			return nil, fmt.Errorf("decode proposal: action %d: unexpected end", i)
		}
		a := action{op: Action(d[0])}
		d = d[1:]
		kind, err := str()
		if err != nil {
			return nil, fmt.Errorf("decode proposal: action %d: kind: %w", i, err)
		}
		a.kind = api.Kind(kind)
		ki, err := lookupKind(a.kind)
		if err != nil {
			return nil, fmt.Errorf("decode proposal: action %d: %w", i, err)
		}
		a.kind = ki.kind // the table's own string, not a copy per action
		if a.base, err = u(); err != nil {
			return nil, fmt.Errorf("decode proposal: action %d: base: %w", i, err)
		}
		switch a.op {
		case ActionCreate, ActionUpdate:
			o := ki.newObject()
			m, err := wire.UnmarshalPrefix(d, o)
			if err != nil {
				return nil, fmt.Errorf("decode proposal: action %d (%s %s): %w", i, a.op, a.kind, err)
			}
			d = d[m:]
			a.obj, a.id = o, o.GetID()
		case ActionDelete:
			if a.id, err = str(); err != nil {
				return nil, fmt.Errorf("decode proposal: action %d: ID: %w", i, err)
			}
		default:
			return nil, fmt.Errorf("decode proposal: action %d: invalid operation %d", i, int(a.op))
		}
		if a.id == "" {
			return nil, fmt.Errorf("decode proposal: action %d (%s %s): empty ID", i, a.op, a.kind)
		}
		out[i] = a
	}
	if len(d) != 0 {
		return nil, fmt.Errorf("decode proposal: %d bytes after the last action", len(d))
	}
	return out, nil
}

// The format-1 proposal: JSON, with one-letter keys.
//
//	{"v":1,"n":123,"a":[{"o":1,"k":"node","x":{...}},{"o":3,"k":"task","i":"ID","b":7}]}
const proposalFormat = 1

type wireProposal struct {
	Format  int          `json:"v"`
	Nonce   uint64       `json:"n,omitempty"`
	Actions []wireAction `json:"a"`
}

type wireAction struct {
	Op     Action          `json:"o"`
	Kind   api.Kind        `json:"k"`
	ID     string          `json:"i,omitempty"` // delete only: the others carry the object
	Base   uint64          `json:"b,omitempty"`
	Object json.RawMessage `json:"x,omitempty"`
}

func decodeJSONActions(data []byte) ([]action, error) {
	var p wireProposal
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("decode proposal: %w", err)
	}
	if p.Format != proposalFormat {
		return nil, fmt.Errorf("decode proposal: format %d, want %d", p.Format, proposalFormat)
	}
	out := make([]action, len(p.Actions))
	for i, w := range p.Actions {
		ki, err := lookupKind(w.Kind)
		if err != nil {
			return nil, fmt.Errorf("decode proposal: action %d: %w", i, err)
		}
		a := action{op: w.Op, kind: w.Kind, id: w.ID, base: w.Base}
		switch w.Op {
		case ActionCreate, ActionUpdate:
			if len(w.Object) == 0 {
				return nil, fmt.Errorf("decode proposal: action %d (%s %s): no object", i, w.Op, w.Kind)
			}
			o := ki.newObject()
			if err := json.Unmarshal(w.Object, o); err != nil {
				return nil, fmt.Errorf("decode proposal: action %d (%s %s): %w", i, w.Op, w.Kind, err)
			}
			a.obj, a.id = o, o.GetID()
		case ActionDelete:
		default:
			return nil, fmt.Errorf("decode proposal: action %d: invalid operation %d", i, int(w.Op))
		}
		if a.id == "" {
			return nil, fmt.Errorf("decode proposal: action %d (%s %s): empty ID", i, w.Op, w.Kind)
		}
		out[i] = a
	}
	return out, nil
}
