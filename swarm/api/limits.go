package api

import (
	"encoding/json"
	"time"
)

// Limits on what one spec may ask for. Every manager holds every service,
// task and node in memory and in its raft log, and a task carries a copy of
// its service's template, so an unbounded count or size in a spec is a way
// for one call to exhaust the managers (a service of a billion replicas did:
// the leader grew to 3 GB in 40 s). Validate refuses a spec beyond any of
// them, naming the field, e.g.
//
//	service "web": replicas: must be <= 100000, got 1000000000
//
// The bounds are generous for real use: Docker and swarmkit set none of
// these, Kubernetes bounds objects by size (1.5 MB in etcd) rather than by
// count.
const (
	// MaxReplicas bounds every count of tasks a service spec asks for:
	// replicas, a replicated job's max_concurrent and total_completions
	// (completed tasks are kept until the job runs again), placement's
	// max_replicas per node and the update and rollback parallelism
	// (0 still means all). Each replica is a task of ~0.7 KB encoded that
	// every manager keeps: 100,000 of them are ~70 MB of state, a few times
	// that in memory.
	MaxReplicas = 100_000

	// MaxSpecBytes bounds a service, node, cluster or network spec
	// encoded as JSON: a large template costs once per task, and long
	// strings and lists fit within it. 128 KiB is the most a single
	// argument or environment entry may hold on Linux (MAX_ARG_STRLEN),
	// and half of Kubernetes' limit on an object's annotations.
	MaxSpecBytes = 128 << 10

	// MaxTemplateBytesTimesReplicas bounds the state a service's tasks
	// hold together: replicas (for a replicated job, the larger of
	// max_concurrent and total_completions) times its task template
	// encoded as JSON. At 100,000 replicas a template may take 5 KiB;
	// a 128 KiB template may run 4,096 replicas.
	MaxTemplateBytesTimesReplicas = 512 << 20

	// MaxRestartAttempts bounds restart_policy.max_attempts (0 stays
	// unlimited): with a window, each task carries the times of its last
	// max_attempts restarts.
	MaxRestartAttempts = 100

	// MaxTaskHistoryRetention bounds the cluster's
	// orchestration.task_history_retention_limit: finished tasks kept per
	// slot, multiplied by every slot of every service.
	MaxTaskHistoryRetention = 100

	// MinHeartbeatPeriod and MaxHeartbeatPeriod bound the cluster's
	// dispatcher.heartbeat_period (0 stays adaptive). Faster, every
	// worker would keep the leader busy; slower, a dead node would go
	// unnoticed for three periods, and a worker learns a new period only
	// at its next heartbeat.
	MinHeartbeatPeriod = 100 * time.Millisecond
	MaxHeartbeatPeriod = time.Hour

	// MaxNodeCertExpiry bounds the cluster's ca_config.node_cert_expiry
	// (0 stays the default, 90 days): half the life of the root a
	// cluster creates (20 years). Certificates live at least an hour
	// (Swarm's minimum; shorter ones would renew almost continuously).
	MaxNodeCertExpiry = 10 * 365 * 24 * time.Hour

	// MaxLabels bounds the entries of one labels map (of a service, a
	// container, a node, the cluster or a network).
	MaxLabels = 1_000
	// MaxEnv bounds a task's environment entries.
	MaxEnv = 1_000
	// MaxArgs bounds a task's command and arguments together, and the
	// words of a health check's test.
	MaxArgs = 1_000
	// MaxMounts bounds a container's mounts.
	MaxMounts = 1_000
	// MaxPorts bounds a service's published ports: a range of 1,000 ports
	// fits; wider ranges are host networking's job.
	MaxPorts = 1_000
	// MaxConstraints, MaxPreferences and MaxPlatforms bound placement: the
	// scheduler checks every constraint and platform of every pending task
	// against every node, and nests spreads one level per preference.
	MaxConstraints = 100
	MaxPreferences = 10
	MaxPlatforms   = 100
	// MaxGenericResources bounds a resources entry's generic resources.
	MaxGenericResources = 100
	// MaxNetworks bounds a task's network attachments, MaxAliases the
	// aliases of one attachment.
	MaxNetworks = 100
	MaxAliases  = 100

	// MaxClusterNetworks bounds the networks of a cluster: each is an
	// object every manager holds, and a network's creation looks at every
	// other's subnet. The default pool (10.0.0.0/8 in /24s) holds 65,536.
	MaxClusterNetworks = 10_000
	// MaxAddrPools bounds the cluster's network.default_addr_pool entries.
	MaxAddrPools = 100
	// MinSubnetBits and MaxSubnetBits bound a network's subnet prefix
	// length (and the cluster's network.subnet_size): a /8 at most, which
	// the allocator walks to find a free address, and a /29 at least, the
	// smallest with room for a gateway and a few tasks.
	MinSubnetBits = 8
	MaxSubnetBits = 29
)

// maxItems checks the length of a list field and reports whether it is
// within limit; callers skip checking the items of a list that is not, so a
// huge list gives one error, not one per item.
func (v *validator) maxItems(field string, n, limit int) bool {
	if n > limit {
		v.addf(field, "must have at most %d entries, got %d", limit, n)
		return false
	}
	return true
}

// maxCount checks a count field against its limit.
func (v *validator) maxCount(field string, n uint64, limit uint64) {
	if n > limit {
		v.addf(field, "must be <= %d, got %d", limit, n)
	}
}

// specBytes checks a spec's encoded size, and returns it. A spec that
// cannot be encoded holds a NaN or an infinity (max_failure_ratio), which
// that field's own check reports: it counts as 0 bytes here.
func (v *validator) specBytes(field string, spec any) int {
	n, err := jsonSize(spec)
	if err != nil {
		return 0
	}
	if n > MaxSpecBytes {
		v.addf(field, "must encode to at most %d bytes of JSON, got %d", MaxSpecBytes, n)
	}
	return n
}

// jsonSize returns the length of json.Marshal(x), counting the bytes as
// the encoder hands them over rather than keeping a copy: every write of
// a spec is checked against its bound, and the size is all the check
// needs.
func jsonSize(x any) (int, error) {
	var n byteCount
	if err := json.NewEncoder(&n).Encode(x); err != nil {
		return 0, err
	}
	return int(n) - 1, nil // Encode ends the value with a newline
}

// byteCount is an io.Writer that counts what is written to it.
type byteCount int

func (c *byteCount) Write(p []byte) (int, error) {
	*c += byteCount(len(p))
	return len(p), nil
}

// validateBounds checks the bounds of a service spec that span fields: its
// encoded size, and its replicas times its template's size.
func (s *ServiceSpec) validateBounds(v *validator) {
	if v.specBytes("spec", s) > MaxSpecBytes {
		return // the product below would only repeat the problem
	}
	field, replicas := "", int64(0)
	switch m := s.Mode; {
	case m.Replicated != nil:
		field, replicas = "replicas", m.Replicated.Replicas
	case m.ReplicatedJob != nil:
		field, replicas = "max_concurrent", m.ReplicatedJob.MaxConcurrent
		if t := m.ReplicatedJob.TotalCompletions; t > replicas {
			field, replicas = "total_completions", t
		}
	}
	if replicas <= 0 || replicas > MaxReplicas {
		return // nothing to multiply, or refused already
	}
	size, err := jsonSize(s.TaskTemplate)
	if err != nil {
		return
	}
	if limit := int64(MaxTemplateBytesTimesReplicas / size); replicas > limit {
		v.addf(field, "must be <= %d for a task template of %d bytes (replicas × template at most %d MiB), got %d",
			limit, size, MaxTemplateBytesTimesReplicas>>20, replicas)
	}
}
