//go:build darwin

package process

import (
	"encoding/binary"
	"syscall"
)

// memTotal is sysctl hw.memsize, or 0.
func memTotal() int64 {
	s, err := syscall.Sysctl("hw.memsize")
	if err != nil {
		return 0
	}
	// syscall.Sysctl returns the raw uint64 as a string, minus a trailing
	// NUL byte it takes for a C string's end: pad it back.
	b := make([]byte, 8)
	copy(b, s)
	return int64(binary.LittleEndian.Uint64(b))
}
