package api

import "strconv"

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
