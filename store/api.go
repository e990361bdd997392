package store

import (
	"context"
	"errors"

	"github.com/apiary-io/apiary/swarm/api"
)

// Proposer replicates a transaction before it is applied. The raft package
// implements it; the store does not import raft. Propose returns only after
// the entry committed and was applied locally through MemoryStore.Apply, with
// the index it was applied at and Apply's error (a conflict found at apply
// time, say). Without a Proposer the store applies its writes directly.
type Proposer interface {
	Propose(ctx context.Context, data []byte) (index uint64, err error)
}

// SizeLimitedProposer is a Proposer that bounds the size of a proposal
// (raft's MaxEntrySize, less its envelope). The store refuses a larger
// transaction with ErrTooLarge before proposing it.
type SizeLimitedProposer interface {
	Proposer
	MaxProposalSize() int
}

// FramingProposer is a Proposer that wraps each proposal in a header of
// its own (raft's envelope). The store then encodes a proposal behind
// ProposalHeadroom() free bytes and calls ProposeFramed, which writes the
// header there: the proposal is not copied again behind a header (a copy
// of every entry, and a tenth of a leader's allocation per write).
type FramingProposer interface {
	Proposer
	ProposalHeadroom() int
	// ProposeFramed proposes buf[ProposalHeadroom():]. buf is the
	// proposer's from the call on: the store never touches it again.
	ProposeFramed(ctx context.Context, buf []byte) (index uint64, err error)
}

// Errors the store returns; test with errors.Is.
var (
	// ErrConflict: an update or delete carried a Meta.Version that is no
	// longer the stored one (someone else wrote the object first).
	ErrConflict = api.ErrConflict
	// ErrNotFound: the object does not exist.
	ErrNotFound = api.ErrNotFound
	// ErrExist: an object with this ID already exists.
	ErrExist = api.ErrExist
	// ErrNameConflict: another object of the kind already has this name.
	ErrNameConflict = api.ErrNameConflict
	// ErrInvalidFind: a By does not apply to the kind searched.
	ErrInvalidFind = errors.New("invalid find argument for this kind")
	// ErrClosed: the store or watcher is closed.
	ErrClosed = errors.New("store closed")
	// ErrTooLarge: a transaction encodes to more than its proposer takes
	// in one proposal. Nothing was written; split the transaction.
	ErrTooLarge = errors.New("transaction too large for one proposal")
)

// ReadTx is a consistent read-only view of the store. Objects it returns are
// copies: callers may change them (and pass them to an update) freely.
type ReadTx interface {
	GetCluster(id string) *api.Cluster
	GetNode(id string) *api.Node
	GetService(id string) *api.Service
	GetTask(id string) *api.Task
	GetNetwork(id string) *api.Network
	GetSecret(id string) *api.Secret
	GetConfig(id string) *api.Config

	FindClusters(by By) ([]*api.Cluster, error)
	FindNodes(by By) ([]*api.Node, error)
	FindServices(by By) ([]*api.Service, error)
	FindTasks(by By) ([]*api.Task, error)
	FindNetworks(by By) ([]*api.Network, error)
	FindSecrets(by By) ([]*api.Secret, error)
	FindConfigs(by By) ([]*api.Config, error)

	// Count returns how many objects of a kind there are (0 for an
	// unknown kind), without reading them.
	Count(kind api.Kind) int
}

// Tx is a read-write transaction. Its writes are visible to its own reads at
// once and to everyone else only after the whole transaction commits.
//
// Create sets Meta.CreatedAt and UpdatedAt; Update sets UpdatedAt and requires
// obj.Meta.Version to equal the stored version (else ErrConflict); the store
// sets Meta.Version to the commit index of the transaction.
type Tx interface {
	ReadTx

	CreateCluster(*api.Cluster) error
	UpdateCluster(*api.Cluster) error
	DeleteCluster(id string) error

	CreateNode(*api.Node) error
	UpdateNode(*api.Node) error
	DeleteNode(id string) error

	CreateService(*api.Service) error
	UpdateService(*api.Service) error
	DeleteService(id string) error
	// CreateServiceOwned and UpdateServiceOwned are CreateService and
	// UpdateService for a caller that hands the service over: the store
	// keeps it, and all it points to, as it is instead of copying it in,
	// so the caller must never change any of it again, committed or not.
	// What it points to may be shared with stored objects, which never
	// change either (a new version may share the old one's parts, but
	// must not point at the old version itself, or every version would
	// stay alive). The control API's writes use them: the copy was a
	// tenth of the leader's allocation per update (docs/benchmarks.md,
	// issue 14).
	CreateServiceOwned(*api.Service) error
	UpdateServiceOwned(*api.Service) error

	CreateTask(*api.Task) error
	UpdateTask(*api.Task) error
	DeleteTask(id string) error

	CreateNetwork(*api.Network) error
	UpdateNetwork(*api.Network) error
	DeleteNetwork(id string) error

	CreateSecret(*api.Secret) error
	UpdateSecret(*api.Secret) error
	DeleteSecret(id string) error

	CreateConfig(*api.Config) error
	UpdateConfig(*api.Config) error
	DeleteConfig(id string) error
}

// Action is what an event did to an object.
type Action int

// Actions.
const (
	ActionCreate Action = iota + 1
	ActionUpdate
	ActionDelete
	// ActionCommit ends the events of one committed transaction.
	ActionCommit
	// ActionRestore says the whole state was replaced (a raft snapshot was
	// installed): watchers must re-read everything.
	ActionRestore
)

func (a Action) String() string {
	switch a {
	case ActionCreate:
		return "create"
	case ActionUpdate:
		return "update"
	case ActionDelete:
		return "delete"
	case ActionCommit:
		return "commit"
	case ActionRestore:
		return "restore"
	}
	return "unknown"
}

// Event is one change of one object, delivered to watchers in commit order.
type Event struct {
	Action Action
	// Object is the object after the change (for a delete: as it was).
	// Nil for commit and restore events.
	Object api.Object
	// Old is the object before an update; nil otherwise.
	Old api.Object
	// Version is the commit index of the transaction.
	Version uint64
}

// Kind returns the kind of the event's object, or "" for commit and restore.
func (e Event) Kind() api.Kind {
	if e.Object == nil {
		return ""
	}
	return e.Object.Kind()
}

// EventFilter selects events for a watcher; an event is delivered when every
// filter accepts it.
type EventFilter func(Event) bool
