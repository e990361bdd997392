package secretfs

import (
	"fmt"
	"syscall"
)

// mountTmpfs mounts a tmpfs of size bytes on dir, of nothing a task could
// execute or use as a device.
func mountTmpfs(dir string, size int) error {
	flags := uintptr(syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, fmt.Sprintf("mode=0700,size=%d", size)); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// unmount detaches the tmpfs on dir (lazily: a process that still has a
// file of it open keeps it until it closes it).
func unmount(dir string) error {
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}
