package main

import (
	"errors"
	"log/slog"

	"github.com/apiary-io/apiary/executor"
)

// newDockerExecutor is replaced when the Docker executor lands.
func newDockerExecutor(string, string, map[string]string, *slog.Logger) (executor.Executor, func(), error) {
	return nil, nil, errors.New("--executor docker: not available in this build yet")
}
