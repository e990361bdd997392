//go:build unix

package process

import (
	"fmt"
	"os"
	"syscall"

	"github.com/apiary-io/apiary/executor"
)

var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "SIGABRT", syscall.SIGALRM: "SIGALRM", syscall.SIGBUS: "SIGBUS",
	syscall.SIGCHLD: "SIGCHLD", syscall.SIGCONT: "SIGCONT", syscall.SIGFPE: "SIGFPE",
	syscall.SIGHUP: "SIGHUP", syscall.SIGILL: "SIGILL", syscall.SIGINT: "SIGINT",
	syscall.SIGIO: "SIGIO", syscall.SIGKILL: "SIGKILL", syscall.SIGPIPE: "SIGPIPE",
	syscall.SIGPROF: "SIGPROF", syscall.SIGQUIT: "SIGQUIT", syscall.SIGSEGV: "SIGSEGV",
	syscall.SIGSTOP: "SIGSTOP", syscall.SIGSYS: "SIGSYS", syscall.SIGTERM: "SIGTERM",
	syscall.SIGTRAP: "SIGTRAP", syscall.SIGTSTP: "SIGTSTP", syscall.SIGTTIN: "SIGTTIN",
	syscall.SIGTTOU: "SIGTTOU", syscall.SIGURG: "SIGURG", syscall.SIGUSR1: "SIGUSR1",
	syscall.SIGUSR2: "SIGUSR2", syscall.SIGVTALRM: "SIGVTALRM", syscall.SIGWINCH: "SIGWINCH",
	syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ",
}

// signalName is the conventional name of sig ("SIGTERM").
func signalName(sig syscall.Signal) string {
	if n, ok := signalNames[sig]; ok {
		return n
	}
	return fmt.Sprintf("SIG%d", int(sig))
}

// exitStatusOf turns a reaped process's state into an ExitStatus. A process
// killed by a signal gets the shell's exit code 128+signal, as Docker reports.
func exitStatusOf(ps *os.ProcessState) executor.ExitStatus {
	if ps == nil {
		return unknownExit("exit status unknown")
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		name := signalName(ws.Signal())
		return executor.ExitStatus{
			ExitCode: 128 + int(ws.Signal()),
			Signal:   name,
			Message:  "killed by " + name,
		}
	}
	code := ps.ExitCode()
	return executor.ExitStatus{ExitCode: code, Message: fmt.Sprintf("exit status %d", code)}
}

// unknownExit is the status of a process whose end was not seen.
func unknownExit(msg string) executor.ExitStatus {
	return executor.ExitStatus{ExitCode: -1, Message: msg}
}

// signalGroup sends sig to the process group pgid; a group already gone is
// not an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("signal %s to process group %d: %w", signalName(sig), pgid, err)
	}
	return nil
}
