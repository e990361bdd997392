//go:build unix

package process

import (
	"syscall"

	"github.com/apiary-io/apiary/swarm/api"
)

// stopSignal is the signal that asks a task's process to stop: its
// spec's StopSignal on this platform (names map to this system's
// numbers), SIGTERM when it names none or one this system lacks
// (validation has refused anything that is not a signal).
func stopSignal(spec api.TaskSpec) syscall.Signal {
	name, n, err := api.ParseStopSignal(spec.StopSignal())
	switch {
	case spec.StopSignal() == "" || err != nil:
		return syscall.SIGTERM
	case name == "":
		return syscall.Signal(n)
	}
	for sig, known := range signalNames {
		if known == name {
			return sig
		}
	}
	return syscall.SIGTERM
}
