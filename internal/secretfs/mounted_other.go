//go:build !unix

package secretfs

// Mounted reports false: nothing is mounted outside Unix.
func Mounted(path string) bool { return false }
