//go:build unix

package balancer

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) the process has used: on a
// shared machine it measures a benchmark's cost where wall time measures
// the neighbours too.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
