package gossip

import "sync/atomic"

// Stats counts what a Member accepted and what it dropped, by reason.
type Stats struct {
	// Accepted counts remote entries that changed the local tables.
	Accepted uint64
	// Malformed counts messages that could not be decoded or broke a
	// size bound as they were read.
	Malformed uint64
	// OverLimit counts entries dropped because holding them would break a
	// bound (MaxEntries, MaxEntriesPerNode, MaxTombstonesPerNode,
	// MaxNetworks, MaxPending, ...).
	OverLimit uint64
	// Untrusted counts entries and certificates whose chain the Verifier
	// refused (another CA, expired, ...).
	Untrusted uint64
	// WrongOwner counts entries and certificates claiming a node other
	// than the one their certificate names.
	WrongOwner uint64
	// BadSignature counts entries whose signature does not verify.
	BadSignature uint64
	// Rejected counts entries the Admit hook refused.
	Rejected uint64
	// PendingExpired counts entries dropped after waiting PendingTimeout
	// for their owner to be seen alive or their certificate to arrive.
	PendingExpired uint64
	// NodesDown counts nodes declared dead or seen leaving.
	NodesDown uint64
	// SendsSkipped counts direct requests and replies not sent because
	// maxConcurrentSends were already under way.
	SendsSkipped uint64
	// SignaturesChecked counts entry signatures verified: copies of an
	// entry checked before are not checked again (verified.go).
	SignaturesChecked uint64
}

// Dropped is the sum of the counts of entries refused for lack of trust.
func (s Stats) Dropped() uint64 {
	return s.Untrusted + s.WrongOwner + s.BadSignature + s.Rejected
}

type counters struct {
	accepted, malformed, overLimit, untrusted, wrongOwner,
	badSignature, rejected, pendingExpired, nodesDown, sendsSkipped, signaturesChecked atomic.Uint64
}

// Stats returns the counters so far.
func (m *Member) Stats() Stats {
	c := &m.stats
	return Stats{
		Accepted: c.accepted.Load(), Malformed: c.malformed.Load(), OverLimit: c.overLimit.Load(),
		Untrusted: c.untrusted.Load(), WrongOwner: c.wrongOwner.Load(), BadSignature: c.badSignature.Load(),
		Rejected: c.rejected.Load(), PendingExpired: c.pendingExpired.Load(), NodesDown: c.nodesDown.Load(),
		SendsSkipped: c.sendsSkipped.Load(), SignaturesChecked: c.signaturesChecked.Load(),
	}
}

// dropped counts one refusal and logs why at debug level (a hostile or
// misconfigured peer could otherwise flood the log).
func (m *Member) dropped(c *atomic.Uint64, what string, err error) {
	c.Add(1)
	m.log.Debug("dropped "+what, "err", err)
}
