// Package process is Apiary's embedded default executor: it runs each task
// as an operating-system process, so a cluster works on any Linux (or macOS)
// machine without a container engine. It is built on Unix process groups,
// signals, credentials, named pipes and flock: on Windows (any system that
// is not Unix) the package builds, but New returns ErrNotSupported.
//
// # Layout on disk
//
// Every task owns a directory <DataDir>/tasks/<task ID>/:
//
//	task.json      the record: the task, PID, process start time, exit status
//	output.log     stdout and stderr, combined, one timestamp per line
//	output.log.1   the previous output.log after a rotation
//	output.fifo    the pipe the process writes its output into
//	work/          the default working directory
//	secrets/       the task's secrets, configs/ its configs (see below)
//
// The record is rewritten atomically (write, fsync, rename) whenever the task
// changes state, so a restarted agent finds every task it started: a new
// Executor on the same DataDir hands out controllers that adopt a
// still-running process (identified by PID and its start time in
// /proc/<pid>/stat, which guards against PID reuse) or report the exit of one
// that ended meanwhile. An adopted process is not our child, so its exit code
// cannot be known: Wait reports ExitCode -1 with a message saying so, unless
// the previous agent recorded the exit before it went away.
//
// # Why a FIFO for the output
//
// The process writes into a named pipe that it holds open for reading as
// well as writing (its stdout and stderr are one O_RDWR descriptor of
// output.fifo). The executor reads the pipe and writes output.log through a
// small rotating writer, which caps the file (Config.LogMaxSize) and keeps
// Config.LogMaxBackups rotated files. Because the process itself holds a
// reader, it never gets SIGPIPE when the agent dies: its output waits in the
// pipe (64 KiB on Linux; a chattier process blocks on write) until the next
// agent adopts the task and drains it. A plain pipe would kill the task with
// the agent, and writing the file directly would leave rotation to
// copy-and-truncate, which loses lines.
//
// Each line of output.log starts with its RFC 3339 UTC timestamp and a space,
// which is what LogOptions.Since filters on; Logs strips them.
//
// # Processes
//
// Each task runs in its own process group. Shutdown sends SIGTERM (or the
// spec's StopSignal) to the group, waits the task's stop grace period and then sends SIGKILL to the
// group; Terminate sends SIGKILL at once. When the main process exits, what
// it left behind in its group (and its cgroup) is killed too, as a container
// engine does when a container's main process ends.
//
// The environment holds PATH (the agent's), HOME (of the user the task runs
// as), the spec's Env, then APIARY_TASK_ID, APIARY_TASK_NAME,
// APIARY_TASK_SLOT, APIARY_SERVICE_ID, APIARY_SERVICE_NAME and
// APIARY_NODE_ID, which the spec cannot override. On the host data path the
// agent adds APIARY_HOST, APIARY_DNS, APIARY_PORT_<target> and PORT to the
// spec's Env before it hands the task over (swarm/agent, taskenv.go). The agent's other
// variables are not passed on, so its secrets do not leak into tasks.
// Command[0] is looked up in the task's PATH. The working directory is the
// spec's Dir or, by default, the task's work/ directory; ProcessSpec.User
// ("name", "uid", "name:group" or "uid:gid") needs the agent to run as root
// unless it names the agent's own user. With User set and the default working
// directory, DataDir must be traversable by that user (mode 0711, which New
// gives a DataDir it creates).
//
// # Secrets and configs
//
// A task that references secrets or configs (issue 16) gets them as files
// in secrets/ and configs/, named by each reference's target, with its
// owner and mode (default: the task's user, 0400 for a secret, 0444 for a
// config); APIARY_SECRETS_DIR and APIARY_CONFIGS_DIR name the directories.
// Each directory is a tmpfs of its own (mode 0700, nosuid, nodev, noexec)
// where the executor may mount one (Linux, root or CAP_SYS_ADMIN): the data
// is then in memory only. Elsewhere, or with Config.SecretsOnDisk, it is a
// 0700 directory on the DataDir's file system, which the executor says in
// its log once. A file is written whole (a temporary file renamed into
// place). The data is never in the task's environment, its record or the
// executor's log. The directories are unmounted and deleted once the task's
// processes are gone (a task runs once), by Remove at the latest.
//
// # Resource limits
//
// A task with Resources.Limits gets its own cgroup v2 under
// Config.CgroupParent (default <cgroup2 mount>/apiary) with memory.max,
// memory.swap.max=0 and cpu.max set, and the process is started inside it
// (clone3 CLONE_INTO_CGROUP, so no child can escape before it is moved). A
// task killed by the kernel's OOM killer reports OOMKilled. Where cgroup v2
// with the memory and cpu controllers is not available or not writable (not
// root, a cgroup v1 or hybrid host, macOS), the executor logs once that
// limits are not enforced and runs tasks without them.
//
// # Lifecycle decisions
//
// Start without Prepare prepares first. Start on a task that has exited does
// nothing (a task runs once; the orchestrator makes a new task to restart).
// Shutdown whose ctx ends before the task is gone returns ctx.Err() and
// leaves the task to its SIGTERM (call Terminate to kill it). Remove stops a
// running task like Shutdown, then deletes the task's cgroup and its whole
// directory, logs included, as removing a container does: the orchestrator
// removes a task only once it has left the task history. Logs of a removed
// task fail with executor.ErrRemoved.
package process
