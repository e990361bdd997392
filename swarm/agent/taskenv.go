package agent

import (
	"strconv"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// The environment the agent gives every task on the host data path (design
// §8, issue 15), on top of the executors' own APIARY_TASK_ID,
// APIARY_TASK_NAME, APIARY_SERVICE_NAME and the rest. The values are fixed
// when the task starts; DNS is the live way to find other services.
const (
	// EnvHost is the address the task binds: its node's (Config.HostAddr).
	EnvHost = "APIARY_HOST"
	// EnvPortPrefix + a target port ("APIARY_PORT_80") is the host port
	// the task listens on for that target port.
	EnvPortPrefix = "APIARY_PORT_"
	// EnvPort is the host port of the task's first target port: the
	// variable most web frameworks listen on.
	EnvPort = "PORT"
	// EnvDNS is the node's DNS server, HOST:PORT (Config.DNSAddr); unset
	// when the node runs none.
	EnvDNS = "APIARY_DNS"
)

// hostEnv is the environment of a task with the given port status, in a
// fixed order: APIARY_HOST, APIARY_DNS, APIARY_PORT_<target> per target
// port in the order of the task's ports, then PORT.
func hostEnv(host, dns string, ports []api.PortConfig) []string {
	env := []string{EnvHost + "=" + host}
	if dns != "" {
		env = append(env, EnvDNS+"="+dns)
	}
	seen := map[uint32]bool{}
	for _, p := range ports {
		if seen[p.TargetPort] {
			continue
		}
		seen[p.TargetPort] = true
		env = append(env, EnvPortPrefix+strconv.FormatUint(uint64(p.TargetPort), 10)+"="+strconv.FormatUint(uint64(p.PublishedPort), 10))
	}
	if len(ports) > 0 {
		env = append(env, EnvPort+"="+strconv.FormatUint(uint64(ports[0].PublishedPort), 10))
	}
	return env
}

// withHostEnv returns a copy of t whose runtime's Env holds the host data
// path's variables. The APIARY_ ones replace any the spec sets (they state
// where the task was placed, which the spec cannot know); PORT is the
// exception: a spec that sets it keeps its value, as PORT is a convention
// an application may use for something of its own. t is not modified.
func withHostEnv(t *api.Task, host, dns string, ports []api.PortConfig) *api.Task {
	c := t.Copy()
	var env *[]string
	switch {
	case c.Spec.Process != nil:
		env = &c.Spec.Process.Env
	case c.Spec.Container != nil:
		env = &c.Spec.Container.Env
	default:
		return c
	}
	ours := hostEnv(host, dns, ports)
	set := map[string]bool{}
	for _, kv := range ours {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	var merged []string
	for _, kv := range *env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == EnvPort:
			delete(set, EnvPort) // the spec's PORT wins
			merged = append(merged, kv)
		case !set[k]:
			merged = append(merged, kv)
		}
	}
	for _, kv := range ours {
		if k, _, _ := strings.Cut(kv, "="); set[k] {
			merged = append(merged, kv)
		}
	}
	*env = merged
	return c
}
