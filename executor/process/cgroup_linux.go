//go:build linux

package process

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

const cgroup2Magic = 0x63677270 // CGROUP2_SUPER_MAGIC

// detect finds the cgroup2 mount, checks its controllers and makes the
// parent cgroup with memory and cpu enabled for its children.
func (m *cgroupManager) detect() {
	mount := m.mount
	if mount == "" {
		var err error
		if mount, err = findCgroup2Mount(m.mountinfo); err != nil {
			m.err = err
			return
		}
	}
	avail, err := readControllers(filepath.Join(mount, "cgroup.controllers"))
	if err != nil {
		m.err = fmt.Errorf("cgroup v2 at %s: %w", mount, err)
		return
	}
	m.mem, m.cpu = avail["memory"], avail["cpu"]
	if !m.mem && !m.cpu {
		have := make([]string, 0, len(avail))
		for c := range avail {
			have = append(have, c)
		}
		m.err = fmt.Errorf("cgroup v2 at %s has neither the memory nor the cpu controller (it has %q): on a cgroup v1 or hybrid host they belong to cgroup v1, which this executor does not use", mount, strings.Join(have, " "))
		return
	}
	parent := m.parentCfg
	if parent == "" {
		parent = filepath.Join(mount, "apiary")
	}
	parent = filepath.Clean(parent)
	rel, err := filepath.Rel(mount, parent)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		m.err = fmt.Errorf("cgroup parent %s is not below the cgroup2 mount %s", parent, mount)
		return
	}
	// Enable the controllers on the way down: each level's subtree_control
	// hands them to its children, the parent's to the task cgroups.
	var ctl []string
	if m.mem {
		ctl = append(ctl, "+memory")
	}
	if m.cpu {
		ctl = append(ctl, "+cpu")
	}
	dir := mount
	for _, part := range append([]string{""}, strings.Split(rel, "/")...) {
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			m.err = fmt.Errorf("cgroup parent: %w", err)
			return
		}
		for _, c := range ctl {
			if err := writeCgroupFile(dir, "cgroup.subtree_control", c); err != nil {
				m.err = fmt.Errorf("enable %s controller in %s: %w (a cgroup that holds processes cannot give controllers to children; set Config.CgroupParent to a delegated cgroup)", c[1:], dir, err)
				return
			}
		}
	}
	m.parent = parent
	var st syscall.Statfs_t
	m.fs = syscall.Statfs(parent, &st) == nil && st.Type == cgroup2Magic
	m.log.Info("resource limits enforced through cgroup v2", "parent", parent, "memory", m.mem, "cpu", m.cpu)
}

// forTask makes the cgroup of a task with limits. It returns nil when the task
// has no limits or the machine cannot enforce them (said once in the log).
func (m *cgroupManager) forTask(taskID string, r *api.ResourceRequirements) (*taskCgroup, error) {
	if !hasLimits(r) {
		return nil, nil
	}
	m.once.Do(m.detect)
	if m.err != nil {
		m.warnOnce("resource limits are not enforced: "+m.err.Error(), "task", taskID)
		return nil, nil
	}
	lim := r.Limits
	if lim.MemoryBytes > 0 && !m.mem {
		m.warnOnce("memory limits are not enforced: no memory controller in cgroup v2", "task", taskID)
	}
	if lim.NanoCPUs > 0 && !m.cpu {
		m.warnOnce("CPU limits are not enforced: no cpu controller in cgroup v2", "task", taskID)
	}
	cg := &taskCgroup{path: filepath.Join(m.parent, taskID), fs: m.fs}
	if err := os.Mkdir(cg.path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	if lim.MemoryBytes > 0 && m.mem {
		if err := writeCgroupFile(cg.path, "memory.max", strconv.FormatInt(lim.MemoryBytes, 10)); err != nil {
			cg.remove()
			return nil, fmt.Errorf("cgroup memory limit: %w", err)
		}
		// The limit is a limit: no swapping past it. The file is missing
		// where swap accounting is off.
		writeCgroupFile(cg.path, "memory.swap.max", "0")
	}
	if lim.NanoCPUs > 0 && m.cpu {
		if err := writeCgroupFile(cg.path, "cpu.max", cpuMax(lim.NanoCPUs)); err != nil {
			cg.remove()
			return nil, fmt.Errorf("cgroup CPU limit: %w", err)
		}
	}
	return cg, nil
}

// adoptCgroup is the cgroup a previous agent made for a task.
func adoptCgroup(path string) *taskCgroup {
	var st syscall.Statfs_t
	return &taskCgroup{path: path, fs: syscall.Statfs(path, &st) == nil && st.Type == cgroup2Magic}
}

// taskCgroup is one task's cgroup.
type taskCgroup struct {
	path  string
	fs    bool // a real cgroup2 directory
	dir   *os.File
	viaFD bool // the process started inside (CLONE_INTO_CGROUP)
}

// apply makes the process start inside the cgroup (clone3 with
// CLONE_INTO_CGROUP), so nothing it forks can stay outside.
func (cg *taskCgroup) apply(attr *syscall.SysProcAttr) {
	if !cg.fs {
		return
	}
	d, err := os.Open(cg.path)
	if err != nil {
		return // afterStart moves the process in instead
	}
	cg.dir = d
	attr.UseCgroupFD = true
	attr.CgroupFD = int(d.Fd())
}

// unapply undoes apply, for a retry without CLONE_INTO_CGROUP.
func (cg *taskCgroup) unapply(attr *syscall.SysProcAttr) {
	attr.UseCgroupFD = false
	attr.CgroupFD = 0
	if cg.dir != nil {
		cg.dir.Close()
		cg.dir = nil
	}
}

// afterStart moves pid into the cgroup when apply could not start it there.
func (cg *taskCgroup) afterStart(pid int) error {
	if cg.dir != nil {
		cg.dir.Close()
		cg.dir = nil
		cg.viaFD = true
		return nil
	}
	return writeCgroupFile(cg.path, "cgroup.procs", strconv.Itoa(pid))
}

// kill kills every process of the cgroup.
func (cg *taskCgroup) kill() {
	if err := writeCgroupFile(cg.path, "cgroup.kill", "1"); err == nil && cg.fs {
		return
	}
	// Before Linux 5.14 there is no cgroup.kill.
	for _, pid := range cg.pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (cg *taskCgroup) pids() []int {
	b, err := os.ReadFile(filepath.Join(cg.path, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// oomKilled reports whether the kernel's OOM killer killed a process of the
// cgroup.
func (cg *taskCgroup) oomKilled() bool {
	b, err := os.ReadFile(filepath.Join(cg.path, "memory.events"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" && f[1] != "0" {
			return true
		}
	}
	return false
}

// remove deletes the cgroup once its processes are gone.
func (cg *taskCgroup) remove() error {
	if !cg.fs {
		return os.RemoveAll(cg.path)
	}
	var err error
	for deadline := time.Now().Add(2 * time.Second); ; {
		err = os.Remove(cg.path)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup: %w", err)
		}
		cg.kill()
		time.Sleep(20 * time.Millisecond)
	}
}

func writeCgroupFile(dir, name, value string) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s to %s: %w", value, filepath.Join(dir, name), err)
	}
	return nil
}

func readControllers(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, c := range strings.Fields(string(b)) {
		set[c] = true
	}
	return set, nil
}

// findCgroup2Mount returns where the cgroup2 file system is mounted
// (/sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on a hybrid one).
func findCgroup2Mount(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		// "36 25 0:31 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw"
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) >= 5 && len(qf) >= 1 && qf[0] == "cgroup2" {
			return unescapeMount(pf[4]), nil
		}
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	return "", errors.New("no cgroup v2 file system is mounted")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupFDUsed reports whether attr starts the process inside a cgroup.
func cgroupFDUsed(attr *syscall.SysProcAttr) bool { return attr.UseCgroupFD }
