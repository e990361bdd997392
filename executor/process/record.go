//go:build unix

package process

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

const (
	recordFile  = "task.json"
	logFile     = "output.log"
	fifoFile    = "output.fifo"
	workDirName = "work"
)

// record is what survives an agent restart, in <task dir>/task.json.
type record struct {
	Version int       `json:"Version"`
	Task    *api.Task `json:"Task"`
	// PID is the process (and process group) of the task once started.
	PID int `json:"PID,omitempty"`
	// StartTicks is the process start time from /proc/<pid>/stat (clock
	// ticks since boot) on Linux, zero elsewhere: a PID with another start
	// time is another process.
	StartTicks uint64    `json:"StartTicks,omitempty"`
	StartedAt  time.Time `json:"StartedAt,omitzero"`
	Command    []string  `json:"Command,omitempty"`
	// Cgroup is the task's own cgroup directory, when it has one.
	Cgroup   string               `json:"Cgroup,omitempty"`
	Exit     *executor.ExitStatus `json:"Exit,omitempty"`
	ExitedAt time.Time            `json:"ExitedAt,omitzero"`
}

const recordVersion = 1

func readRecord(dir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("task record %s: %w", dir, err)
	}
	return &r, nil
}

// writeRecord replaces the record atomically: a crash leaves the old or the
// new record, never a torn one.
func writeRecord(dir string, r *record) error {
	r.Version = recordVersion
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, recordFile+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, recordFile))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write task record: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
