package pki

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"
)

// Root rotation replaces the cluster root with no moment at which two
// members cannot talk. Let A be the old root and B the new one.
//
//	Idle(A)                    trust {A}; leaves signed by A.
//	  │ StartRootRotation: create B; I = B's subject and key signed by A.
//	  ▼
//	Rotating(A→B)              trust bundle {A, B}; the CA signs with B and
//	  │                        hands out the chain [leaf, I].
//	  │ every node renews (swarm tells them to; RenewNow).
//	  │ Invariant: every presented chain leads to A (A-leaves directly, B-leaves
//	  │ through I), and every node trusts A (old bundle {A} or new {A, B}), so any
//	  │ pair of nodes can handshake whoever has renewed.
//	  │ ReconcileRootRotation: once every member's last certificate is signed
//	  │ by B, finish.
//	  ▼
//	Idle(B)                    trust {B}; A is dropped, its key forgotten.
//	                           Nodes learn {B} at their next renewal (swarm
//	                           triggers one). Meanwhile: every node holds a
//	                           B-leaf, which chains to B directly and to A
//	                           through I, so nodes still on {A, B} and nodes
//	                           on {B} accept each other. New leaves carry no I.
//
// Join tokens name A's digest until the rotation finishes, B's afterwards:
// tokens handed out before the rotation stop working at its end.

// RotationStatus describes a root rotation.
type RotationStatus struct {
	InProgress    bool
	OldRootDigest string
	NewRootDigest string
	StartedAt     time.Time
	// Pending lists the members whose last certificate is not yet signed by
	// the new root.
	Pending []string
	// Finished is true when this call completed the rotation.
	Finished bool
}

// StartRootRotation creates a new root and its cross-signed intermediate
// and makes the CA sign with it. It refuses while a rotation is in progress
// and in external CA mode (rotate the external CA's root there).
func (s *CAServer) StartRootRotation(ctx context.Context) (RotationStatus, error) {
	var st RotationStatus
	err := s.state.UpdateCA(ctx, func(rec *CARecord) error {
		if err := rec.StartRootRotation(s.now()); err != nil {
			return err
		}
		var err error
		st, err = rotationStatus(rec, nil)
		return err
	})
	if err != nil {
		return RotationStatus{}, fmt.Errorf("pki: start root rotation: %w", err)
	}
	s.logger.Info("pki: root CA rotation started", "old_root", st.OldRootDigest, "new_root", st.NewRootDigest)
	return st, nil
}

// StartRootRotation moves rec from Idle(A) to Rotating(A→B).
func (r *CARecord) StartRootRotation(now time.Time) error {
	if r.External != nil {
		return fmt.Errorf("pki: the root of an external CA is rotated at that CA")
	}
	if r.Rotation != nil {
		return ErrRotationInProgress
	}
	old, err := r.Root()
	if err != nil {
		return err
	}
	if old.Key == nil {
		return fmt.Errorf("pki: rotate root: %w", ErrNoSigningKey)
	}
	nr, err := NewRootCA(r.ClusterID)
	if err != nil {
		return err
	}
	_, crossPEM, err := old.CrossSign(nr.Cert)
	if err != nil {
		return err
	}
	r.Rotation = &RootRotation{NewRootCert: nr.CertPEM, NewRootKey: nr.KeyPEM, CrossSignedCert: crossPEM, StartedAt: now}
	return nil
}

// FinishRootRotation moves rec from Rotating(A→B) to Idle(B). Callers check
// first that every node holds a B-signed certificate (ReconcileRootRotation).
func (r *CARecord) FinishRootRotation() error {
	if r.Rotation == nil {
		return ErrNoRotation
	}
	r.RootCert, r.RootKey = r.Rotation.NewRootCert, r.Rotation.NewRootKey
	r.Rotation = nil
	return nil
}

// RootRotationStatus reports progress without changing anything.
func (s *CAServer) RootRotationStatus(ctx context.Context) (RotationStatus, error) {
	rec, err := s.state.CA(ctx)
	if err != nil {
		return RotationStatus{}, fmt.Errorf("pki: read CA state: %w", err)
	}
	nodes, err := s.state.Nodes(ctx)
	if err != nil {
		return RotationStatus{}, fmt.Errorf("pki: list nodes: %w", err)
	}
	return rotationStatus(&rec, nodes)
}

// ReconcileRootRotation finishes the rotation in progress once every member
// holds a certificate from the new root; the leader calls it whenever a node
// renews (or periodically). Removed nodes do not hold it back.
func (s *CAServer) ReconcileRootRotation(ctx context.Context) (RotationStatus, error) {
	st, err := s.RootRotationStatus(ctx)
	if err != nil || !st.InProgress || len(st.Pending) > 0 {
		return st, err
	}
	err = s.state.UpdateCA(ctx, func(rec *CARecord) error {
		if rec.Rotation == nil {
			return ErrNoRotation
		}
		cur, err := rotationStatus(rec, nil)
		if err != nil {
			return err
		}
		// Another manager may have restarted the rotation meanwhile.
		if cur.NewRootDigest != st.NewRootDigest {
			return fmt.Errorf("pki: rotation changed under us (new root %s…, was %s…)", cur.NewRootDigest[:12], st.NewRootDigest[:12])
		}
		return rec.FinishRootRotation()
	})
	if err != nil {
		return st, fmt.Errorf("pki: finish root rotation: %w", err)
	}
	st.InProgress, st.Finished = false, true
	s.logger.Info("pki: root CA rotation finished", "root", st.NewRootDigest)
	return st, nil
}

func rotationStatus(rec *CARecord, nodes []NodeCert) (RotationStatus, error) {
	old, err := rec.Root()
	if err != nil {
		return RotationStatus{}, err
	}
	st := RotationStatus{OldRootDigest: old.Digest}
	if rec.Rotation == nil {
		return st, nil
	}
	nr, err := ParseRootCA(rec.Rotation.NewRootCert, nil)
	if err != nil {
		return RotationStatus{}, fmt.Errorf("pki: rotation's new root: %w", err)
	}
	st.InProgress, st.NewRootDigest, st.StartedAt = true, nr.Digest, rec.Rotation.StartedAt
	newKeyID := hex.EncodeToString(nr.Cert.SubjectKeyId)
	for _, n := range nodes {
		if n.IssuerKeyID != newKeyID {
			st.Pending = append(st.Pending, n.NodeID)
		}
	}
	return st, nil
}

// RotationKeyID is, while a root rotation is in progress, the hex subject
// key ID of the new root: a node whose certificate was not signed by it
// must renew before the rotation can finish. It is empty otherwise.
func (r *CARecord) RotationKeyID() (string, error) {
	if r.Rotation == nil {
		return "", nil
	}
	nr, err := ParseRootCA(r.Rotation.NewRootCert, nil)
	if err != nil {
		return "", fmt.Errorf("pki: rotation's new root: %w", err)
	}
	return hex.EncodeToString(nr.Cert.SubjectKeyId), nil
}
