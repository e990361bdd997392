package main

import (
	"log/slog"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/docker"
)

// newDockerExecutor runs tasks as containers of the local Docker Engine.
// On the host data path, containers share the host's network: they listen
// on the host ports their environment names.
func newDockerExecutor(_ string, host string, labels map[string]string, hostNetwork bool, log *slog.Logger) (executor.Executor, func(), error) {
	cfg := docker.DefaultConfig()
	cfg.Hostname, cfg.Labels, cfg.Logger, cfg.HostNetwork = host, labels, log, hostNetwork
	e, err := docker.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return e, func() { e.Close() }, nil
}
