package store

import (
	"encoding/json"
	"fmt"

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
	Format  int          `json:"v"`
	Actions []wireAction `json:"a"`
}

type wireAction struct {
	Op     Action          `json:"o"`
	Kind   api.Kind        `json:"k"`
	ID     string          `json:"i,omitempty"` // delete only: the others carry the object
	Base   uint64          `json:"b,omitempty"`
	Object json.RawMessage `json:"x,omitempty"`
}

func encodeActions(actions []action) ([]byte, error) {
	p := wireProposal{Format: proposalFormat, Actions: make([]wireAction, len(actions))}
	for i, a := range actions {
		w := wireAction{Op: a.op, Kind: a.kind, Base: a.base}
		if a.op == ActionDelete {
			w.ID = a.id
		} else {
			b, err := json.Marshal(a.obj)
			if err != nil {
				return nil, fmt.Errorf("%s %s %s: %w", a.op, a.kind, a.id, err)
			}
			w.Object = b
		}
		p.Actions[i] = w
	}
	return json.Marshal(p)
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
