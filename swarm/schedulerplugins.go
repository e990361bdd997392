package swarm

import (
	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/swarm/api"
)

// schedulerPlugins names a scheduler's pipeline in the order it runs:
// filters, scores (with their weights), reserve plugins. A manager records
// it in its node's ManagerStatus, so that `apiaryctl node inspect` shows
// managers configured with other plugins than their peers (each places
// with its own while it leads).
func schedulerPlugins(cfg scheduler.Config) []api.SchedulerPlugin {
	out := make([]api.SchedulerPlugin, 0, len(cfg.Filters)+len(cfg.Scores)+len(cfg.Reserves))
	for _, f := range cfg.Filters {
		out = append(out, api.SchedulerPlugin{Stage: api.SchedulerFilter, Name: f.Name()})
	}
	for _, s := range cfg.Scores {
		out = append(out, api.SchedulerPlugin{Stage: api.SchedulerScore, Name: s.Plugin.Name(), Weight: s.Weight})
	}
	for _, r := range cfg.Reserves {
		out = append(out, api.SchedulerPlugin{Stage: api.SchedulerReserve, Name: r.Name()})
	}
	return out
}
