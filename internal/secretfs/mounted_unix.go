//go:build unix

package secretfs

import (
	"path/filepath"
	"syscall"
)

// Mounted reports whether path is on another file system than its parent:
// a tmpfs mounted there.
func Mounted(path string) bool {
	var st, parent syscall.Stat_t
	if syscall.Lstat(path, &st) != nil || syscall.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
