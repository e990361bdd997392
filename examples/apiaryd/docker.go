package main

import (
	"log/slog"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/docker"
)

// newDockerExecutor runs tasks as containers of the local Docker Engine.
func newDockerExecutor(_ string, host string, labels map[string]string, log *slog.Logger) (executor.Executor, func(), error) {
	cfg := docker.DefaultConfig()
	cfg.Hostname, cfg.Labels, cfg.Logger = host, labels, log
	e, err := docker.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return e, func() { e.Close() }, nil
}
