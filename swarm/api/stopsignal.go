package api

import (
	"fmt"
	"strconv"
	"strings"
)

// stopSignalNames are the signals a stop signal may name: POSIX's, as
// docker's --stop-signal takes them (with or without "SIG", any case).
// Each executor maps the name to its platform's number.
var stopSignalNames = map[string]bool{
	"ABRT": true, "ALRM": true, "BUS": true, "CHLD": true, "CONT": true, "FPE": true, "HUP": true,
	"ILL": true, "INT": true, "IO": true, "KILL": true, "PIPE": true, "PROF": true, "QUIT": true,
	"SEGV": true, "STOP": true, "SYS": true, "TERM": true, "TRAP": true, "TSTP": true, "TTIN": true,
	"TTOU": true, "URG": true, "USR1": true, "USR2": true, "VTALRM": true, "WINCH": true, "XCPU": true,
	"XFSZ": true,
}

// maxSignal bounds a stop signal given as a number (Linux's realtime
// signals end at 64).
const maxSignal = 64

// StopSignal returns the runtime's stop signal, "" for the default.
func (t TaskSpec) StopSignal() string {
	switch {
	case t.Container != nil:
		return t.Container.StopSignal
	case t.Process != nil:
		return t.Process.StopSignal
	}
	return ""
}

// ParseStopSignal reads a stop signal: a name ("SIGINT", "int") as
// "SIGINT", or a number from 1 to 64 as that number (name "").
func ParseStopSignal(s string) (name string, number int, err error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > maxSignal {
			return "", 0, fmt.Errorf("signal number %d: must be 1 to %d", n, maxSignal)
		}
		return "", n, nil
	}
	base := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if !stopSignalNames[base] {
		return "", 0, fmt.Errorf("%q is not a signal name such as SIGINT or a number", s)
	}
	return "SIG" + base, 0, nil
}

// stopSignal checks a spec's stop signal ("" is the default).
func (v *validator) stopSignal(field, s string) {
	if s == "" {
		return
	}
	if _, _, err := ParseStopSignal(s); err != nil {
		v.addf(field, "%v", err)
	}
}
