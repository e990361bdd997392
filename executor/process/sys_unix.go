//go:build unix && !linux

package process

import (
	"os"
	"syscall"
)

// procStartTicks is Linux-only: elsewhere PID reuse is not guarded against.
func procStartTicks(pid int) (uint64, error) { return 0, nil }

// processGone reports whether no process pid exists any more.
func processGone(pid int, start uint64) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// openFifoReader opens the read end of a FIFO without waiting for a writer,
// then makes it blocking: kqueue does not report a FIFO's last writer
// closing (Go issue 24164), so it must not go to the runtime poller.
func openFifoReader(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// groupIsOurs reports whether process group pid can only be the task's, once
// its main process pid ended: no process has that PID any more.
func groupIsOurs(pid int, start uint64) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}
