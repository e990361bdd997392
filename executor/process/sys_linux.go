//go:build linux

package process

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procStat reads the state and start time (clock ticks since boot) of pid
// from /proc/<pid>/stat.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return f[0][0], start, nil
}

// procStartTicks returns the start time of pid, to tell it from a later
// process that reuses the PID.
func procStartTicks(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// processGone reports whether the process pid started at start has ended: no
// such PID, another process under that PID, or a zombie nobody reaped yet.
func processGone(pid int, start uint64) bool {
	state, st, err := procStat(pid)
	if err != nil {
		return os.IsNotExist(err) || err == syscall.ESRCH
	}
	if start != 0 && st != start {
		return true
	}
	return state == 'Z' || state == 'X' || state == 'x'
}

// memTotal is MemTotal of /proc/meminfo in bytes, or 0.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// openFifoReader opens the read end of a FIFO without waiting for a writer.
// The descriptor stays non-blocking so the runtime poller serves it and
// Close interrupts a pending Read.
func openFifoReader(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// groupIsOurs reports whether process group pid can only be the task's, once
// the task's main process pid (started at start) has ended: no process has
// that PID (the kernel does not give a PID to a new process while it still
// numbers a process group), or it is the task's own unreaped zombie. Any
// other process under that PID means the group is gone and the number
// reused: it must not be signalled.
func groupIsOurs(pid int, start uint64) bool {
	state, st, err := procStat(pid)
	if err != nil {
		return os.IsNotExist(err) || err == syscall.ESRCH
	}
	return state == 'Z' && (start == 0 || st == start)
}
