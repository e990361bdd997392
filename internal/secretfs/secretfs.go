// Package secretfs writes a task's secrets or configs (issue 16) into a
// directory of its own, for the executors that give them to tasks as
// files: a tmpfs of its own where one can be mounted (Linux, as root or
// with CAP_SYS_ADMIN), so the data is in memory only, else a plain
// directory. Files are written whole (a temporary file renamed into
// place), so a reader never sees half of one.
package secretfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File is one file of a directory.
type File struct {
	// Name is a clean relative path inside the directory.
	Name string
	Data []byte
	// UID and GID own the file; -1 leaves the writer's.
	UID, GID int
	Mode     os.FileMode
}

// Dir is a directory of files.
type Dir struct {
	Path string
	// Mode is the directory's (and its subdirectories') permissions.
	Mode os.FileMode
	// UID and GID own the directory and its subdirectories; -1 leaves
	// the writer's.
	UID, GID int
	// OnDisk never mounts a tmpfs.
	OnDisk bool
}

// Write makes the directory (a tmpfs sized for files, unless OnDisk or it
// is a mount point already) and writes every file whole. notMounted says
// why the directory is not a tmpfs when one was wanted, nil otherwise.
func (d Dir) Write(files []File) (notMounted, err error) {
	if err := os.Mkdir(d.Path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	if !d.OnDisk && !Mounted(d.Path) {
		size := 0
		for _, f := range files {
			// Every file takes whole pages, and its temporary copy
			// exists beside it while it is renamed into place.
			size += 2 * (len(f.Data) + os.Getpagesize())
		}
		notMounted = mountTmpfs(d.Path, size+os.Getpagesize()*(len(files)+16))
	}
	if err := d.own(d.Path); err != nil {
		return notMounted, err
	}
	for _, f := range files {
		if err := d.write(f); err != nil {
			return notMounted, fmt.Errorf("target %q: %w", f.Name, err)
		}
	}
	return notMounted, nil
}

// own gives a directory its mode and owner.
func (d Dir) own(path string) error {
	if err := os.Chmod(path, d.Mode.Perm()); err != nil {
		return err
	}
	if d.UID >= 0 || d.GID >= 0 {
		return os.Chown(path, d.UID, d.GID)
	}
	return nil
}

// write writes one file whole: into a temporary file beside it, with its
// owner and mode, renamed into place.
func (d Dir) write(f File) error {
	if f.Name == "" || !filepath.IsLocal(f.Name) {
		return errors.New("not a relative path inside the directory")
	}
	path := filepath.Join(d.Path, f.Name)
	if sub := filepath.Dir(path); sub != d.Path {
		if err := os.MkdirAll(sub, 0o700); err != nil {
			return err
		}
		// The reader must be able to reach the file.
		for p := sub; p != d.Path; p = filepath.Dir(p) {
			if err := d.own(p); err != nil {
				return err
			}
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".apiary-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails once renamed
	_, err = tmp.Write(f.Data)
	if err == nil {
		err = tmp.Chmod(f.Mode.Perm())
	}
	if err == nil && (f.UID >= 0 || f.GID >= 0) {
		err = tmp.Chown(f.UID, f.GID)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	return err
}

// Remove unmounts path when it is a mount point and deletes it with all
// it holds; a path that does not exist is no error.
func Remove(path string) error {
	if Mounted(path) {
		if err := unmount(path); err != nil {
			return err
		}
	}
	return os.RemoveAll(path)
}
