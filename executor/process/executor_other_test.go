//go:build !unix

package process

import (
	"errors"
	"runtime"
	"testing"
)

func TestNewNotSupported(t *testing.T) {
	e, err := New(Config{DataDir: t.TempDir()})
	if e != nil || !errors.Is(err, ErrNotSupported) {
		t.Fatalf("New = %v, %v; want nil, ErrNotSupported", e, err)
	}
	if runtime.GOOS == "windows" && err.Error() != "process executor not supported on windows" {
		t.Errorf("error %q, want the one the README quotes", err)
	}
}
