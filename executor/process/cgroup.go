//go:build unix

package process

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/apiary-io/apiary/swarm/api"
)

// cgroupManager makes a cgroup for each task with resource limits, where the
// machine allows it. It looks at the machine once, at the first task that
// has limits, and says once in the log when limits cannot be enforced.
type cgroupManager struct {
	log       *slog.Logger
	parentCfg string
	// mountinfo and mount are the places detection reads: /proc/self/mountinfo
	// and the cgroup2 mount it names, unless a test sets them.
	mountinfo string
	mount     string

	once   sync.Once
	parent string
	mem    bool
	cpu    bool
	fs     bool  // parent is on a real cgroup2 file system
	err    error // why there are no limits at all

	warnMu sync.Mutex
	warned map[string]bool
}

func newCgroupManager(parent string, log *slog.Logger) *cgroupManager {
	return &cgroupManager{log: log, parentCfg: parent, mountinfo: "/proc/self/mountinfo", warned: map[string]bool{}}
}

// warnOnce logs msg the first time only.
func (m *cgroupManager) warnOnce(msg string, args ...any) {
	m.warnMu.Lock()
	first := !m.warned[msg]
	m.warned[msg] = true
	m.warnMu.Unlock()
	if first {
		m.log.Warn(msg, args...)
	}
}

// hasLimits reports whether r asks for limits this executor knows.
func hasLimits(r *api.ResourceRequirements) bool {
	return r != nil && r.Limits != nil && (r.Limits.MemoryBytes > 0 || r.Limits.NanoCPUs > 0)
}

// cpuMax is cgroup v2's cpu.max for nanoCPUs over a 100 ms period.
func cpuMax(nanoCPUs int64) string {
	const period = 100000 // µs
	quota := nanoCPUs * period / 1e9
	if quota < 1000 {
		quota = 1000 // the kernel's minimum
	}
	return fmt.Sprintf("%d %d", quota, period)
}
