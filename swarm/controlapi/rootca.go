package controlapi

import (
	"context"
	"errors"
	"time"
)

// CA is the cluster's certificate authority as the control API drives it;
// the swarm package implements it over package pki.
type CA interface {
	StartRootRotation(ctx context.Context) (*RootRotation, error)
	RootRotationStatus(ctx context.Context) (*RootRotation, error)
}

// RootRotation reports a root CA rotation.
type RootRotation struct {
	InProgress    bool      `json:"InProgress"`
	OldRootDigest string    `json:"OldRootDigest,omitempty"`
	NewRootDigest string    `json:"NewRootDigest,omitempty"`
	StartedAt     time.Time `json:"StartedAt,omitzero"`
	// Pending are the nodes that do not hold a certificate of the new root yet.
	Pending []string `json:"Pending,omitempty"`
}

// ErrNoCA: this manager has no certificate authority to rotate.
var ErrNoCA = errors.New("this manager runs without a certificate authority")

// SetCA plugs the certificate authority in.
func (s *Server) SetCA(ca CA) { s.ca = ca }

// RotateRootCA starts replacing the cluster's root CA: a new root,
// cross-signed by the old one, so that old and new certificates are trusted
// alike until every node holds a new one; then the old root is dropped.
func (s *Server) RotateRootCA(ctx context.Context) (*RootRotation, error) {
	if s.ca == nil {
		return nil, ErrNoCA
	}
	return s.ca.StartRootRotation(ctx)
}

// RootCAStatus reports the rotation in progress, if any.
func (s *Server) RootCAStatus(ctx context.Context) (*RootRotation, error) {
	if s.ca == nil {
		return nil, ErrNoCA
	}
	return s.ca.RootRotationStatus(ctx)
}
