//go:build !linux

package raft

import bolt "go.etcd.io/bbolt"

// releaseMapped is Linux's (see storage_mapped_linux.go); elsewhere the
// pages bbolt read stay mapped until the file grows.
func releaseMapped(*bolt.DB, int64) {}
