package controlapi

import (
	"context"

	"github.com/apiary-io/apiary/swarm/api/control"
)

// CA is the cluster's certificate authority as the control API drives it;
// the swarm package implements it over package pki.
type CA interface {
	StartRootRotation(ctx context.Context) (*RootRotation, error)
	RootRotationStatus(ctx context.Context) (*RootRotation, error)
}

// RootRotation reports a root CA rotation (the contract's).
type RootRotation = control.RootRotation

// ErrNoCA: this manager has no certificate authority to rotate.
var ErrNoCA = control.ErrNoCA

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
