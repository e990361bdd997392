//go:build !linux

package secretfs

import "errors"

var errNoTmpfs = errors.New("tmpfs mounts are Linux only here")

func mountTmpfs(dir string, size int) error { return errNoTmpfs }

func unmount(dir string) error { return errNoTmpfs }
