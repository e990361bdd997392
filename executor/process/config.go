package process

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/apiary-io/apiary/swarm/api"
)

// Defaults of Config.
const (
	DefaultLogMaxSize    = 10 << 20
	DefaultLogMaxBackups = 1
)

// Config configures an Executor.
type Config struct {
	// DataDir holds the executor's lock and one directory per task (record,
	// output, default working directory). Tasks survive an agent restart
	// only if the next Executor is given the same DataDir.
	DataDir string
	// Hostname is reported by Describe; empty means os.Hostname().
	Hostname string
	// Labels are reported as the engine labels of the node.
	Labels map[string]string
	// Logger receives the executor's own messages; nil means slog.Default().
	Logger *slog.Logger
	// Resources, where its fields are non-zero, replace the detected CPUs
	// and memory in Describe (to keep some of the machine for the system).
	Resources api.Resources
	// LogMaxSize caps output.log in bytes: a full file is rotated. Zero
	// means DefaultLogMaxSize; negative means no cap.
	LogMaxSize int64
	// LogMaxBackups is how many rotated files (output.log.1, ...) are kept.
	// Zero means DefaultLogMaxBackups.
	LogMaxBackups int
	// CgroupParent is the cgroup v2 directory (an absolute path inside the
	// cgroup2 mount) under which each task with resource limits gets its
	// own cgroup. Empty means "<cgroup2 mount>/apiary". Use a delegated
	// cgroup when the agent runs under systemd.
	CgroupParent string
	// SecretsOnDisk writes a task's secrets and configs as files in a 0700
	// directory of its task directory, on the DataDir's file system,
	// instead of a per-task tmpfs (memory only). The executor falls back
	// to it, logging once, where it cannot mount a tmpfs (not root, no
	// CAP_SYS_ADMIN, not Linux).
	SecretsOnDisk bool
}

// DefaultConfig returns a Config with every default filled in: a DataDir
// under the temporary directory, the machine's hostname and slog.Default().
// Set DataDir to a persistent directory in production.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		DataDir:       filepath.Join(os.TempDir(), "apiary-process"),
		Hostname:      host,
		Logger:        slog.Default(),
		LogMaxSize:    DefaultLogMaxSize,
		LogMaxBackups: DefaultLogMaxBackups,
	}
}
