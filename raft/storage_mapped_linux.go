package raft

import (
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// releaseMapped takes the pages of raft.db that bbolt's mapping holds out
// of the process's memory. bbolt reads its file through a read-only shared
// mapping, and a page it read stays resident, counted in the process's
// RSS, until the mapping is replaced, which happens only when the file
// grows: compacting the log reads every entry it deletes (the leaf pages
// holding them), so after a 100,000-task scale the leader kept ~the whole
// compacted log resident. MADV_DONTNEED on a shared file mapping drops the
// pages from the process only: they stay in the page cache, the file is
// unchanged, and a later read maps them again.
func releaseMapped(db *bolt.DB, size int64) {
	if size <= 0 {
		return
	}
	// Best effort: a failure leaves the pages resident, as they were.
	syscall.Syscall(syscall.SYS_MADVISE, db.Info().Data, uintptr(size), syscall.MADV_DONTNEED)
}
