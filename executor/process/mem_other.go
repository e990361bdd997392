//go:build unix && !linux && !darwin

package process

// memTotal is unknown on this platform.
func memTotal() int64 { return 0 }
