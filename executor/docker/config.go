package docker

import (
	"log/slog"
	"time"

	"github.com/docker/docker/client"
)

// DefaultPullTimeout bounds an image pull when Config.PullTimeout is zero.
const DefaultPullTimeout = 5 * time.Minute

// Config configures an Executor.
type Config struct {
	// Client talks to the engine; nil means a client from the environment
	// (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY)
	// with API version negotiation, which the Executor closes on Close.
	Client *client.Client
	// ClusterID labels every container (io.apiary.cluster) and scopes
	// ListTasks and the event subscription to this cluster's containers.
	ClusterID string
	// NodeID labels containers of tasks that carry no node ID and, when
	// set, scopes ListTasks to this node's containers. Set it whenever
	// several agents share one engine.
	NodeID string
	// Hostname is reported by Describe; empty means the engine's host name.
	Hostname string
	// Labels are reported as engine labels of the node, over the engine's
	// own labels (docker info).
	Labels map[string]string
	// Logger receives the executor's own messages; nil means slog.Default().
	Logger *slog.Logger
	// PullTimeout bounds an image pull; zero means DefaultPullTimeout.
	PullTimeout time.Duration
	// Init runs the engine's init process (docker-init, as docker run
	// --init does) as PID 1 of every container, with the task's program
	// as its child. The init reaps zombies and forwards signals; without
	// it the program is PID 1, which the kernel spares every signal it has
	// no handler for, so a program that does not handle SIGTERM (or gets it
	// before it installed its handler, right after the start) is only
	// stopped by the SIGKILL at the end of its grace period. The engine
	// must have an init binary (docker info: InitBinary).
	Init bool
	// HostNetwork runs every container in the host's network namespace
	// (NetworkMode "host"), as tasks run on the host data path (design §8):
	// a task listens on the host port its environment names
	// (APIARY_HOST, PORT, APIARY_PORT_<target>, set by the agent) and the
	// node's mesh forwards to it. False leaves the engine's default network.
	HostNetwork bool
	// SecretsDir, when set, is a directory of this machine that the
	// engine can bind-mount (the engine runs here). Each task's secrets
	// and configs are then written under <SecretsDir>/<task ID>/, in
	// tmpfs mounts of their own where the executor can mount them (Linux,
	// root), and bind-mounted read-only into its container: never on the
	// engine's disk, and gone as soon as the container exits. Empty: they
	// are copied into the container before it starts, into its writable
	// layer, until the container is removed (secrets.go).
	SecretsDir string
}

// DefaultConfig returns a Config with every default filled in: a client
// from the environment (made by New), slog.Default() and DefaultPullTimeout.
func DefaultConfig() Config {
	return Config{
		Logger:      slog.Default(),
		PullTimeout: DefaultPullTimeout,
	}
}
