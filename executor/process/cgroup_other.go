//go:build unix && !linux

package process

import (
	"syscall"

	"github.com/apiary-io/apiary/swarm/api"
)

// forTask says once that limits are not enforced: cgroups are Linux-only.
func (m *cgroupManager) forTask(taskID string, r *api.ResourceRequirements) (*taskCgroup, error) {
	if hasLimits(r) {
		m.warnOnce("resource limits are not enforced: cgroups exist on Linux only", "task", taskID)
	}
	return nil, nil
}

// taskCgroup does nothing outside Linux.
type taskCgroup struct{ path string }

func (cg *taskCgroup) apply(*syscall.SysProcAttr)   {}
func (cg *taskCgroup) unapply(*syscall.SysProcAttr) {}
func (cg *taskCgroup) afterStart(int) error         { return nil }
func (cg *taskCgroup) kill()                        {}
func (cg *taskCgroup) oomKilled() bool              { return false }
func (cg *taskCgroup) remove() error                { return nil }

// adoptCgroup is a no-op outside Linux.
func adoptCgroup(path string) *taskCgroup { return &taskCgroup{path: path} }

func cgroupFDUsed(*syscall.SysProcAttr) bool { return false }
