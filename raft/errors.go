package raft

import (
	"errors"
	"fmt"
)

// Errors returned by the package; test with errors.Is.
var (
	// ErrNotLeader: the operation needs the leader and this member is not
	// it. The error is a *NotLeaderError naming the leader when one is known.
	ErrNotLeader = errors.New("raft: this member is not the leader")
	// ErrLostLeadership: leadership changed (a new term, a step-down, a
	// transfer) while a proposal or read waited. For a proposal the outcome
	// is unknown: the entry may still commit under the new leader, exactly
	// once, or never. The caller may read and retry.
	ErrLostLeadership = errors.New("raft: leadership changed before the request completed (a proposal's outcome is unknown)")
	// ErrStopped: the node was stopped (or stopped itself after a fatal
	// storage error) before the request completed.
	ErrStopped = errors.New("raft: node stopped")
	// ErrRemoved: a member was removed from the cluster. Its ID is refused
	// for ever: a node removed cannot rejoin under its old identity.
	ErrRemoved = errors.New("raft: member was removed from the cluster")
	// ErrQuorumLoss: a membership change was refused because the cluster
	// would no longer have a reachable majority of voters.
	ErrQuorumLoss = errors.New("raft: change refused: it would lose quorum")
	// ErrUnknownMember: the member is not part of the cluster.
	ErrUnknownMember = errors.New("raft: no such member")
	// ErrMemberExists: AddMember with an ID that is already a voter.
	ErrMemberExists = errors.New("raft: member already exists")
	// ErrTransferFailed: a leadership transfer did not complete in time.
	ErrTransferFailed = errors.New("raft: leadership transfer did not complete")
	// ErrCorrupt: the storage (log, hard state or a snapshot file) failed
	// a checksum or consistency check. Nothing was changed; the data
	// directory needs an operator (restore it, or rejoin the member anew).
	ErrCorrupt = errors.New("raft: storage is corrupt")
	// ErrBadEntry: a committed entry was not written by this package.
	ErrBadEntry = errors.New("raft: malformed log entry")
	// ErrEntryTooLarge: a proposal is larger than Config.MaxEntrySize. It
	// was not proposed; split the write.
	ErrEntryTooLarge = errors.New("raft: proposal is larger than the maximum entry size")
)

// NotLeaderError is returned for operations that need the leader. It
// matches ErrNotLeader with errors.Is.
type NotLeaderError struct {
	// Leader is the current leader's ID, or 0 when none is known (an
	// election is in progress, or this member is cut off).
	Leader uint64
}

func (e *NotLeaderError) Error() string {
	if e.Leader == 0 {
		return "raft: this member is not the leader and no leader is known"
	}
	return fmt.Sprintf("raft: this member is not the leader (the leader is %x)", e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

func notLeader(lead uint64) error { return &NotLeaderError{Leader: lead} }
