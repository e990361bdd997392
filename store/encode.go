package store

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/apiary-io/apiary/swarm/api"
)

// The proposal format. JSON keeps it debuggable and round-trips every api
// field (times as RFC 3339 with nanoseconds, task states by name); the
// envelope uses one-letter keys and deletes carry only the ID, since the
// object is read back from the committed state. Only the replicated path
// encodes: the direct path hands its actions over as they are.
//
//	{"v":1,"a":[{"o":1,"k":"node","x":{...}},{"o":3,"k":"task","i":"ID","b":7}]}
const proposalFormat = 1

type wireProposal struct {
	Format int `json:"v"`
	// Nonce, when not 0, marks a proposal whose proposer keeps its actions
	// in memory until it applies the entry (MemoryStore.local): the
	// proposing manager applies them without decoding what it encoded.
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

func encodeActions(actions []action) ([]byte, error) { return encodeProposal(actions, 0) }

// encodeProposal writes the envelope by hand around each object's
// encoding: json.Marshal of the envelope would scan and copy every object's
// bytes once more (RawMessage is compacted). The bytes are those
// json.Marshal(wireProposal) gives.
func encodeProposal(actions []action, nonce uint64) ([]byte, error) {
	buf := make([]byte, 0, 256*len(actions)+32)
	buf = append(buf, `{"v":`...)
	buf = strconv.AppendInt(buf, proposalFormat, 10)
	if nonce != 0 {
		buf = append(buf, `,"n":`...)
		buf = strconv.AppendUint(buf, nonce, 10)
	}
	buf = append(buf, `,"a":[`...)
	for i, a := range actions {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"o":`...)
		buf = strconv.AppendInt(buf, int64(a.op), 10)
		buf = append(buf, `,"k":`...)
		buf = strconv.AppendQuote(buf, string(a.kind))
		if a.op == ActionDelete && a.id != "" {
			id, err := json.Marshal(a.id)
			if err != nil {
				return nil, err
			}
			buf = append(buf, `,"i":`...)
			buf = append(buf, id...)
		}
		if a.base != 0 {
			buf = append(buf, `,"b":`...)
			buf = strconv.AppendUint(buf, a.base, 10)
		}
		if a.op != ActionDelete {
			b, err := json.Marshal(a.obj)
			if err != nil {
				return nil, fmt.Errorf("%s %s %s: %w", a.op, a.kind, a.id, err)
			}
			buf = append(buf, `,"x":`...)
			buf = append(buf, b...)
		}
		buf = append(buf, '}')
	}
	buf = append(buf, "]}"...)
	return buf, nil
}

// proposalNonce reads the nonce at the head of a proposal that has one
// (`{"v":1,"n":123,...`), without decoding the rest; 0 when there is none.
func proposalNonce(data []byte) uint64 {
	const head = `{"v":1,"n":`
	if len(data) < len(head) || string(data[:len(head)]) != head {
		return 0
	}
	var n uint64
	for _, c := range data[len(head):] {
		if c < '0' || c > '9' {
			return n
		}
		n = n*10 + uint64(c-'0')
	}
	return 0
}

func decodeActions(data []byte) ([]action, error) {
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
