//go:build !linux

package raft

import "os"

// fdatasync is Linux's (storage_sync_linux.go); elsewhere a full fsync.
func fdatasync(f *os.File) error { return f.Sync() }
