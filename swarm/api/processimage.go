package api

import (
	"path"
	"strings"
)

// A container spec whose image is an absolute path ("/opt/app/bin/web")
// names an executable on the node rather than an image: a process-executor
// node runs it as an OS process (issue 17), so that `docker service create
// /path/to/program` works against a cluster of process nodes. Docker
// executors cannot run it, since no registry holds such an image.

// IsProcessImage reports whether image is an absolute path to an
// executable, which only process-executor nodes run.
func IsProcessImage(image string) bool {
	return strings.HasPrefix(image, "/") && path.Clean(image) == image && image != "/"
}

// RunsAsProcess reports whether the container spec can run as an OS
// process: its image is an absolute path (IsProcessImage).
func (c *ContainerSpec) RunsAsProcess() bool {
	return c != nil && IsProcessImage(c.Image)
}

// AsProcess returns the process spec a process-executor node runs for the
// container spec: Command then Args when Command is set (Docker's
// entrypoint override), otherwise the image's path then Args; Env, Dir,
// User and the grace period as they are. Labels have no process
// counterpart. It returns nil unless RunsAsProcess.
func (c *ContainerSpec) AsProcess() *ProcessSpec {
	if !c.RunsAsProcess() {
		return nil
	}
	cmd := copySlice(c.Command)
	if len(cmd) == 0 {
		cmd = []string{c.Image}
	}
	return &ProcessSpec{
		Command:         cmd,
		Args:            copySlice(c.Args),
		Env:             copySlice(c.Env),
		Dir:             c.Dir,
		User:            c.User,
		StopGracePeriod: copyPtr(c.StopGracePeriod),
	}
}

// RunsOn reports whether a node whose executor is of kind executorKind
// ("process", "docker", "fake", or "" when unknown) can run the spec: its
// runtime's executor, a fake or unknown one, or a process executor for a
// container spec that RunsAsProcess.
func (t TaskSpec) RunsOn(executorKind string) bool {
	rk := t.RuntimeKind()
	switch executorKind {
	case "", "fake", rk:
		return true
	case RuntimeProcess:
		return t.Container.RunsAsProcess()
	}
	return rk == ""
}
