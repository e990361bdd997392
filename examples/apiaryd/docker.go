package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/docker"
)

// newDockerExecutor runs tasks as containers of the local Docker Engine.
// On the host data path, containers share the host's network: they listen
// on the host ports their environment names. An engine on this machine
// (DOCKER_HOST unset or a unix socket) gets tasks' secrets bind-mounted
// from tmpfs mounts under DATA_DIR/secrets; a remote one, copied into the
// containers (docker.Config.SecretsDir).
func newDockerExecutor(dataDir string, host string, labels map[string]string, hostNetwork bool, log *slog.Logger) (executor.Executor, func(), error) {
	cfg := docker.DefaultConfig()
	cfg.Hostname, cfg.Labels, cfg.Logger, cfg.HostNetwork = host, labels, log, hostNetwork
	if h := os.Getenv("DOCKER_HOST"); h == "" || strings.HasPrefix(h, "unix://") {
		cfg.SecretsDir = filepath.Join(dataDir, "secrets")
	}
	e, err := docker.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return e, func() { e.Close() }, nil
}
