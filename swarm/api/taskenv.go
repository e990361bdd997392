package api

import (
	"os"
	"strconv"
)

// defaultTaskPath is the PATH of a task whose daemon has none (a daemon
// started with an empty environment): the usual one of a Unix system.
const defaultTaskPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// TaskPath is the PATH a task's process and its health checks run with:
// the daemon's own, or defaultTaskPath when it has none.
func TaskPath() string {
	if path := os.Getenv("PATH"); path != "" {
		return path
	}
	return defaultTaskPath
}

// TaskIdentityEnv is the environment that tells a task's process who it
// is, as every executor and the agent's health checks give it:
// APIARY_TASK_ID, APIARY_TASK_NAME, APIARY_TASK_SLOT, APIARY_SERVICE_ID,
// APIARY_SERVICE_NAME and APIARY_NODE_ID (nodeID: the node it runs on),
// in that order. They come after the spec's Env, and win over it.
func TaskIdentityEnv(t *Task, nodeID string) []string {
	return []string{
		"APIARY_TASK_ID=" + t.ID,
		"APIARY_TASK_NAME=" + t.Name,
		"APIARY_TASK_SLOT=" + strconv.FormatUint(t.Slot, 10),
		"APIARY_SERVICE_ID=" + t.ServiceID,
		"APIARY_SERVICE_NAME=" + t.ServiceAnnotations.Name,
		"APIARY_NODE_ID=" + nodeID,
	}
}
