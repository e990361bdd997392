// Package session is the contract between a worker and the managers: the
// session a worker's agent keeps with the leader's dispatcher (register,
// heartbeat, the stream of its task assignments, its status reports), its
// messages, its bounds and its errors, with the gRPC glue generated from
// the interface. It holds no implementation: the manager serves it
// (swarm/dispatcher), the worker calls it (swarm/agent), and the worker
// links neither the manager's code nor the CA.
package session

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/rpc"
)

//go:generate go run github.com/apiary-io/apiary/internal/rpcgen -type API -service apiary.Dispatcher

// API is the dispatcher as a worker sees it. Over the network every call
// is bound to the node the caller's certificate names: a request naming
// another node is refused.
type API interface {
	// Register opens a session; a previous session of the node ends.
	Register(ctx context.Context, req *RegisterRequest) (*RegisterResponse, error)
	// Heartbeat keeps a session alive and says when to beat next.
	Heartbeat(ctx context.Context, req *HeartbeatRequest) (*HeartbeatResponse, error)
	// Assignments streams the session's tasks: the complete set, then
	// every change.
	Assignments(ctx context.Context, req *AssignmentsRequest) (rpc.Stream[AssignmentsMessage], error)
	// UpdateTaskStatus records status reports; it returns once they are
	// written, so a worker knows what to send again after a failover.
	UpdateTaskStatus(ctx context.Context, req *UpdateTaskStatusRequest) error
	// Managers lists the managers' addresses, the leader first. Every
	// manager answers, leading or not: a worker whose known managers all
	// refuse its session asks them which managers exist now.
	Managers(ctx context.Context) ([]string, error)
}

// Errors of the session; test with errors.Is, on either side of the wire.
var (
	// ErrSessionInvalid: the session is unknown or was replaced; the
	// worker must register again.
	ErrSessionInvalid = errors.New("session invalid: register again")
	// ErrNodeRemoved: the node was removed from the cluster and must join
	// anew. (The CA's refusal of a removed node's certificate carries the
	// same reason.)
	ErrNodeRemoved = errors.New("node was removed from the cluster")
	// ErrNotRunning: the dispatcher is not running (this manager is not
	// the leader, or is shutting down).
	ErrNotRunning = errors.New("dispatcher is not running")
	// ErrBadRequest: a request breaks one of the bounds below.
	ErrBadRequest = errors.New("invalid request")
)

func init() {
	rpc.RegisterError("SESSION_INVALID", ErrSessionInvalid, codes.FailedPrecondition)
	rpc.RegisterError("NODE_REMOVED", ErrNodeRemoved, codes.PermissionDenied)
	rpc.RegisterError("DISPATCHER_NOT_RUNNING", ErrNotRunning, codes.Unavailable)
	rpc.RegisterError("DISPATCHER_BAD_REQUEST", ErrBadRequest, codes.InvalidArgument)
}

// What a worker sends is bounded (docs/security.md): a worker's
// certificate proves who it is, not that it is well-behaved.
const (
	// MaxStatusUpdates is the most status reports one UpdateTaskStatus
	// request may carry.
	MaxStatusUpdates = 1000
	// MaxStatusText bounds a report's Message and Err: longer ones are
	// cut, as they are free text from the executor, and refusing the
	// report would only make the worker send it again.
	MaxStatusText = 4096
	// MaxPortStatus bounds the ports a report may list.
	MaxPortStatus = 256
	// MaxHostnameLen, MaxEngineLabels, MaxLabelKeyLen, MaxLabelValueLen,
	// MaxGenericResources and MaxDescriptionField bound a node's
	// self-description at registration.
	MaxHostnameLen      = 253
	MaxEngineLabels     = 256
	MaxLabelKeyLen      = 256
	MaxLabelValueLen    = 4096
	MaxGenericResources = 64
	MaxDescriptionField = 256
	// MaxAssignmentsBytes bounds the tasks of one assignments message,
	// encoded: gRPC refuses a message above 4 MiB by default, and a
	// node's complete set can be any size (50,000 tasks are 35 MB). A task
	// larger than this is a message of its own.
	MaxAssignmentsBytes = 1 << 20
)

// RegisterRequest opens a worker session. An empty NodeID joins the cluster
// as a new node; a known NodeID resumes that node.
type RegisterRequest struct {
	NodeID      string              `json:"NodeID,omitempty"`
	Description api.NodeDescription `json:"Description"`
	// Addr is the address the worker is reachable at, for display.
	Addr string `json:"Addr,omitempty"`
	// GossipAddr is where the node gossips (HOST:PORT; empty: it takes
	// no part in the routing mesh). Other nodes join it there.
	GossipAddr string `json:"GossipAddr,omitempty"`
}

// MaxGossipPeers bounds the gossip addresses one response carries: a node
// joins a few, and learns of everyone from them.
const MaxGossipPeers = 16

// RegisterResponse identifies the session.
type RegisterResponse struct {
	NodeID    string `json:"NodeID"`
	SessionID string `json:"SessionID"`
	// HeartbeatPeriod is how often the worker must heartbeat; a worker
	// silent for the period times the grace multiplier is declared down.
	HeartbeatPeriod time.Duration `json:"HeartbeatPeriod"`
	// Managers are the addresses of every manager, for the worker to fail
	// over to when this one goes away.
	Managers []string `json:"Managers,omitempty"`
	// CAVersion changes whenever the cluster's CA state does (a root
	// rotation starts or ends): the worker then renews its certificate.
	CAVersion string `json:"CAVersion,omitempty"`
	// GossipKeys are the cluster's gossip keys as registration finds
	// them; nil while the cluster has none yet.
	GossipKeys *GossipKeys `json:"GossipKeys,omitempty"`
	// GossipPeers are other nodes' gossip addresses (managers first, at
	// most MaxGossipPeers) for a node that gossips to join.
	GossipPeers []string `json:"GossipPeers,omitempty"`
}

// HeartbeatRequest keeps a session alive.
type HeartbeatRequest struct {
	NodeID    string `json:"NodeID"`
	SessionID string `json:"SessionID"`
	// GossipKeysVersion is the Version of the gossip keys the node holds
	// (0: none): the response carries the keys only when they differ.
	GossipKeysVersion uint64 `json:"GossipKeysVersion,omitempty"`
	// WantGossipPeers asks for GossipPeers: the node's gossip knows no
	// other node (it started alone, or every node it knew went away).
	WantGossipPeers bool `json:"WantGossipPeers,omitempty"`
}

// HeartbeatResponse tells the period to use until the next heartbeat: it
// grows with the cluster so the leader's heartbeat load stays bounded.
type HeartbeatResponse struct {
	Period time.Duration `json:"Period"`
	// Managers are the managers' addresses, so that a worker learns of
	// managers that joined after it registered.
	Managers []string `json:"Managers,omitempty"`
	// CAVersion changes whenever the cluster's CA state does (a root
	// rotation starts or ends): the worker then renews its certificate.
	CAVersion string `json:"CAVersion,omitempty"`
	// Role is the role the node's certificate should carry (see
	// api.Node.CertificateRole): a node whose certificate says otherwise
	// renews it, and then starts or stops being a manager.
	Role api.NodeRole `json:"Role,omitempty"`
	// RenewCertificate asks the node to renew its certificate now: a root
	// rotation is in progress and the cluster has no certificate of the
	// new root recorded for it. (CAVersion cannot say so to a node that
	// started after the rotation did.)
	RenewCertificate bool `json:"RenewCertificate,omitempty"`
	// GossipKeys, when set, replace the node's gossip keys: the cluster's
	// differ from the version the request said the node holds.
	GossipKeys *GossipKeys `json:"GossipKeys,omitempty"`
	// GossipPeers answer WantGossipPeers, as in RegisterResponse.
	GossipPeers []string `json:"GossipPeers,omitempty"`
}

// GossipKeys are the keys of the nodes' gossip (memberlist's AES-256-GCM
// keyring), as the managers hand them to a node: the node encrypts with
// Primary and accepts any of Accepted as well, the overlap that lets every
// node learn a new primary before the old one goes. A node without the
// current keys cannot take part in gossip. Key material prints as
// "[redacted]" (api.SecretBytes). A receiver treats the bytes as read-only
// (in one process several nodes may share them); Raw returns copies.
type GossipKeys struct {
	// Version is the primary's Lamport clock: it grows with every
	// rotation and stays the same across a failover.
	Version uint64 `json:"Version"`
	// Primary is the key to encrypt with (api.GossipKeyLen bytes).
	Primary api.SecretBytes `json:"Primary"`
	// Accepted are the previous keys, newest first, still accepted.
	Accepted []api.SecretBytes `json:"Accepted,omitempty"`
	// AssignmentKey is the public key (ed25519) that checks the
	// managers' assignment proofs (api.Task.AssignmentProof); empty
	// while the cluster has none.
	AssignmentKey []byte `json:"AssignmentKey,omitempty"`
}

// GossipKeysOf returns what a node is handed of a keyring, or nil when it
// has no key yet.
func GossipKeysOf(k api.GossipKeyring) *GossipKeys {
	if len(k.Keys) == 0 {
		return nil
	}
	out := &GossipKeys{Version: k.Keys[0].Lamport, Primary: k.Keys[0].Key}
	for _, key := range k.Keys[1:] {
		out.Accepted = append(out.Accepted, key.Key)
	}
	if len(k.AssignmentKey) == ed25519.SeedSize {
		out.AssignmentKey = ed25519.NewKeyFromSeed(k.AssignmentKey).Public().(ed25519.PublicKey)
	}
	return out
}

// Raw returns copies of the keys as memberlist's keyring takes them
// (gossip.Member.SetKeys(primary, accepted...)); the caller owns them.
func (k *GossipKeys) Raw() (primary []byte, accepted [][]byte) {
	if k == nil {
		return nil, nil
	}
	for _, a := range k.Accepted {
		accepted = append(accepted, bytes.Clone(a))
	}
	return bytes.Clone(k.Primary), accepted
}

// Equal reports whether two sets of keys are the same.
func (k *GossipKeys) Equal(o *GossipKeys) bool {
	if k == nil || o == nil {
		return k == o
	}
	if k.Version != o.Version || !bytes.Equal(k.Primary, o.Primary) || len(k.Accepted) != len(o.Accepted) ||
		!bytes.Equal(k.AssignmentKey, o.AssignmentKey) {
		return false
	}
	for i := range k.Accepted {
		if !bytes.Equal(k.Accepted[i], o.Accepted[i]) {
			return false
		}
	}
	return true
}

// AssignmentsRequest opens the stream of a session's task assignments.
type AssignmentsRequest struct {
	NodeID    string `json:"NodeID"`
	SessionID string `json:"SessionID"`
}

// AssignmentsType says whether a message is the full set or a change.
type AssignmentsType int

// Assignment message types.
const (
	// AssignmentsComplete carries every task of the node; tasks the worker
	// has that are not in it are no longer its own.
	AssignmentsComplete AssignmentsType = iota
	// AssignmentsIncremental carries changed and removed tasks only.
	AssignmentsIncremental
)

// AssignmentsMessage is one message of the assignments stream. Messages
// are bounded in size (MaxAssignmentsBytes): a complete set too large for
// one comes in parts, each but the last with More set, and the worker acts
// on it once it has the last; a large change comes as several incremental
// messages, applied in order.
type AssignmentsMessage struct {
	Type AssignmentsType `json:"Type"`
	// Tasks are new or changed tasks (all of them, for Complete).
	Tasks []*api.Task `json:"Tasks,omitempty"`
	// Removed are IDs of tasks the node must stop and forget.
	Removed []string `json:"Removed,omitempty"`
	// More, on a Complete message, says the set continues in the next.
	More bool `json:"More,omitempty"`
	// Secrets and Configs are the data of the secrets and configs the
	// node's tasks reference (issue 16): a node gets one only while it
	// has a task that references it and has not ended (ASSIGNED to
	// RUNNING), in the message of the first such task or an earlier one.
	// A Complete set carries every one the node needs; the node forgets
	// the others. A secret's data prints as "[redacted]"; a receiver
	// keeps them in memory only. One that would not fit a message with
	// others comes alone (at most api.MaxSecretSize, encoded within
	// MaxAssignmentsBytes).
	Secrets []*api.Secret `json:"Secrets,omitempty"`
	Configs []*api.Config `json:"Configs,omitempty"`
	// RemovedSecrets and RemovedConfigs, on an Incremental message, are
	// IDs the node no longer needs: the last task that referenced one
	// ended, left the node or was removed.
	RemovedSecrets []string `json:"RemovedSecrets,omitempty"`
	RemovedConfigs []string `json:"RemovedConfigs,omitempty"`
}

// Empty reports whether the message carries nothing.
func (m *AssignmentsMessage) Empty() bool {
	return len(m.Tasks)+len(m.Removed)+len(m.Secrets)+len(m.Configs)+len(m.RemovedSecrets)+len(m.RemovedConfigs) == 0
}

// TaskStatusUpdate is a worker's report of one task.
type TaskStatusUpdate struct {
	TaskID string         `json:"TaskID"`
	Status api.TaskStatus `json:"Status"`
}

// UpdateTaskStatusRequest carries a batch of status reports.
type UpdateTaskStatusRequest struct {
	NodeID    string             `json:"NodeID"`
	SessionID string             `json:"SessionID"`
	Updates   []TaskStatusUpdate `json:"Updates"`
}
