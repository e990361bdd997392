package process

import (
	"errors"
	"runtime"
)

// Kind is the executor kind reported in the node description.
const Kind = "process"

// ErrNotSupported is what New returns on a system that is not Unix, such
// as Windows: the executor is built on process groups, Unix signals, user
// credentials, named pipes and flock, which have no Windows counterparts.
// The package still builds there, so a program that offers several
// executors builds everywhere and reports this error when asked for this
// one.
var ErrNotSupported = errors.New("process executor not supported on " + runtime.GOOS)
