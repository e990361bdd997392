package api

import (
	"path"
	"strings"
)

// A container spec can name an executable on the node rather than an
// image: a process-executor node runs it as an OS process (issue 17), so
// that the docker CLI (`docker service create`, `docker stack deploy`)
// drives a cluster of process nodes. Two spellings name the program:
//
//   - an absolute path, "/opt/app/bin/web": what `docker service create`
//     and apiaryctl pass through as given;
//   - "process.apiary.invalid/opt/app/bin/web[:TAG]" (ProcessImageHost),
//     a valid image reference: the docker CLI's compose loader refuses a
//     path ("invalid image reference") before it sends anything, and adds
//     ":latest" to a reference without a tag. The reserved ".invalid" TLD
//     (RFC 2606) resolves nowhere, so no registry can ever serve such an
//     image and no Docker engine pulls something else under that name.
//     The tag is ignored (changing it still changes the spec, so it rolls
//     the tasks); a digest is refused (no registry records one). Paths the
//     reference grammar cannot spell (upper case, "+", ...) take the
//     absolute-path form, or any such image with the program in Command
//     (compose's entrypoint), which wins over the image.
//
// Only process nodes run either: Docker executors cannot pull them.

// ProcessImageHost is the reserved registry host of process images.
const ProcessImageHost = "process.apiary.invalid"

// ProcessImagePath returns the program a process image names: the image
// itself when it is a clean absolute path, "/PATH" for
// ProcessImageHost/PATH[:TAG] a valid image reference with PATH clean. ok
// is false for any other image, including ProcessImageHost with a digest
// or an unclean path.
func ProcessImagePath(image string) (program string, ok bool) {
	p := image
	if rest, found := strings.CutPrefix(image, ProcessImageHost+"/"); found {
		// An image reference (the reference grammar's lower-case path
		// components), without a digest.
		if strings.Contains(rest, "@") || !validImageReference(image) {
			return "", false
		}
		// A tag is after the last ':' that follows the last '/'.
		if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
			rest = rest[:i]
		}
		p = "/" + rest
	}
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
		return "", false
	}
	return p, true
}

// IsProcessImage reports whether image names an executable (an absolute
// path, or ProcessImageHost/PATH[:TAG]), which only process-executor
// nodes run.
func IsProcessImage(image string) bool {
	_, ok := ProcessImagePath(image)
	return ok
}

// RunsAsProcess reports whether the container spec can run as an OS
// process: its image names an executable (IsProcessImage).
func (c *ContainerSpec) RunsAsProcess() bool {
	return c != nil && IsProcessImage(c.Image)
}

// AsProcess returns the process spec a process-executor node runs for the
// container spec: Command then Args when Command is set (Docker's
// entrypoint override), otherwise the image's program then Args; Env,
// Dir, User and the grace period as they are. Labels have no process
// counterpart. It returns nil unless RunsAsProcess.
func (c *ContainerSpec) AsProcess() *ProcessSpec {
	if c == nil {
		return nil
	}
	program, ok := ProcessImagePath(c.Image)
	if !ok {
		return nil
	}
	cmd := copySlice(c.Command)
	if len(cmd) == 0 {
		cmd = []string{program}
	}
	return &ProcessSpec{
		Command:         cmd,
		Args:            copySlice(c.Args),
		Env:             copySlice(c.Env),
		Dir:             c.Dir,
		User:            c.User,
		StopGracePeriod: copyPtr(c.StopGracePeriod),
		StopSignal:      c.StopSignal,
	}
}

// RunsOn reports whether a node whose executor is of kind executorKind
// ("process", "docker", "fake", or "" when unknown) can run the spec: its
// runtime's executor, a fake or unknown one; a container spec whose
// image names an executable (RunsAsProcess) runs on process nodes only.
func (t TaskSpec) RunsOn(executorKind string) bool {
	if t.Process == nil && t.Container.RunsAsProcess() {
		switch executorKind {
		case "", "fake", RuntimeProcess:
			return true
		}
		return false
	}
	rk := t.RuntimeKind()
	switch executorKind {
	case "", "fake", rk:
		return true
	}
	return rk == ""
}
