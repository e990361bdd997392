package dockerapi

import (
	"encoding/json"
	"reflect"

	"github.com/docker/docker/api/types/swarm"

	"github.com/apiary-io/apiary/swarm/api"
)

// The Docker ServiceSpec a client sent is kept in the service's spec, as
// the extension extensionKey (api.ServiceSpec.Extensions), beside ours:
// Docker's CLI updates a service by reading its spec, changing a field and
// sending the whole spec back, so every field we have no place for (log
// driver, privileges, DNS settings, ...) must come back as it was sent.
//
// Reading a service, each group of fields we map (annotations, mode,
// update and rollback configs, endpoint, and in the task template the
// container's known fields, resources, restart policy, placement,
// networks, force-update) is compared between our spec now and our spec as
// the kept Docker spec maps to (with our defaults filled, as the control
// API stored it): equal, the kept Docker field is returned as it was sent;
// different (the service was changed another way: apiaryctl, the Go
// client, a rollback to a spec without an extension), ours is returned
// mapped to Docker's. Fields we do not map always come from the kept spec.
//
// Writing, the other way round: a group the client sent back as we showed
// it keeps our field as stored, so what Docker cannot express (a process
// spec, a port's proxy protocol) survives a Docker client's update.

// extensionKey is the Extensions key of the Docker spec.
const extensionKey = "docker"

// keptSpec returns the Docker spec kept in s, if any.
func keptSpec(s api.ServiceSpec) (swarm.ServiceSpec, bool) {
	raw, ok := s.Extensions[extensionKey]
	if !ok {
		return swarm.ServiceSpec{}, false
	}
	var d swarm.ServiceSpec
	if err := json.Unmarshal(raw, &d); err != nil {
		return swarm.ServiceSpec{}, false
	}
	return d, true
}

// dockerSpec returns the Docker spec of our spec s (see above). With
// insertDefaults (inspect's parameter), every field we map is ours, the
// defaults filled in, and only the others come from the kept spec.
func dockerSpec(s api.ServiceSpec, insertDefaults bool) swarm.ServiceSpec {
	cur := fromAPIServiceSpec(s)
	sent, ok := keptSpec(s)
	if !ok {
		return cur
	}
	base := fromAPIServiceSpec(toAPIServiceSpec(sent).WithDefaults())
	k := keeper{all: insertDefaults}
	out := sent
	keep(k, &out.Annotations, base.Annotations, cur.Annotations)
	// The mode is mapped whole, and always shown as ours: Docker's daemon
	// shows a mode sent without Replicas (what `docker service create`
	// sends without --replicas) with the 1 it defaulted to, and the CLI's
	// progress display and scale refuse a replicated mode without it.
	out.Mode = cur.Mode
	keep(k, &out.UpdateConfig, base.UpdateConfig, cur.UpdateConfig)
	keep(k, &out.RollbackConfig, base.RollbackConfig, cur.RollbackConfig)
	keep(k, &out.EndpointSpec, base.EndpointSpec, cur.EndpointSpec)
	ot, bt, ct := &out.TaskTemplate, base.TaskTemplate, cur.TaskTemplate
	keep(k, &ot.Resources, bt.Resources, ct.Resources)
	keep(k, &ot.RestartPolicy, bt.RestartPolicy, ct.RestartPolicy)
	keep(k, &ot.Placement, bt.Placement, ct.Placement)
	keep(k, &ot.Networks, bt.Networks, ct.Networks)
	keep(k, &ot.ForceUpdate, bt.ForceUpdate, ct.ForceUpdate)
	switch {
	case ct.ContainerSpec == nil:
		ot.ContainerSpec = nil
	case ot.ContainerSpec == nil || bt.ContainerSpec == nil:
		ot.ContainerSpec = ct.ContainerSpec
	default:
		c := *ot.ContainerSpec
		b, n := bt.ContainerSpec, ct.ContainerSpec
		keep(k, &c.Image, b.Image, n.Image)
		keep(k, &c.Labels, b.Labels, n.Labels)
		keep(k, &c.Command, b.Command, n.Command)
		keep(k, &c.Args, b.Args, n.Args)
		keep(k, &c.Env, b.Env, n.Env)
		keep(k, &c.Dir, b.Dir, n.Dir)
		keep(k, &c.User, b.User, n.User)
		keep(k, &c.Mounts, b.Mounts, n.Mounts)
		keep(k, &c.StopGracePeriod, b.StopGracePeriod, n.StopGracePeriod)
		keep(k, &c.StopSignal, b.StopSignal, n.StopSignal)
		keep(k, &c.Healthcheck, b.Healthcheck, n.Healthcheck)
		keep(k, &c.Secrets, b.Secrets, n.Secrets)
		keep(k, &c.Configs, b.Configs, n.Configs)
		ot.ContainerSpec = &c
	}
	return out
}

// keeper says whether keep takes ours in every case (insertDefaults).
type keeper struct{ all bool }

// keep leaves *sent as it is when our field did not change since it was
// sent (base, what it mapped to, equals cur, ours now), and takes ours
// otherwise.
func keep[T any](k keeper, sent *T, base, cur T) {
	if k.all || !reflect.DeepEqual(base, cur) {
		*sent = cur
	}
}

// specFromDocker maps a spec a Docker client sent to ours, keeping the
// Docker spec in the extension. prev, when the service exists, is its
// stored spec: the groups the client sent back unchanged keep our fields
// as stored (see above).
func specFromDocker(d swarm.ServiceSpec, prev *api.ServiceSpec) (api.ServiceSpec, error) {
	s := toAPIServiceSpec(d)
	raw, err := json.Marshal(d)
	if err != nil {
		return api.ServiceSpec{}, err
	}
	s.Extensions = map[string][]byte{extensionKey: raw}
	if prev == nil {
		return s, nil
	}
	for k, v := range prev.Extensions {
		if k != extensionKey {
			s.Extensions[k] = v
		}
	}
	shown := dockerSpec(*prev, false)
	if reflect.DeepEqual(shown.EndpointSpec, d.EndpointSpec) {
		s.EndpointSpec = prev.EndpointSpec
	}
	st, pt := &s.TaskTemplate, prev.TaskTemplate
	sh := shown.TaskTemplate
	if pt.Process != nil && d.TaskTemplate.ContainerSpec != nil && sh.ContainerSpec != nil &&
		reflect.DeepEqual(runtimeFields(*sh.ContainerSpec), runtimeFields(*d.TaskTemplate.ContainerSpec)) {
		st.Process, st.Container = pt.Process, nil
	}
	if reflect.DeepEqual(sh.Resources, d.TaskTemplate.Resources) {
		st.Resources = pt.Resources
	}
	if reflect.DeepEqual(sh.Placement, d.TaskTemplate.Placement) {
		st.Placement = pt.Placement
	}
	if reflect.DeepEqual(sh.Networks, d.TaskTemplate.Networks) {
		st.Networks = pt.Networks
	}
	return s.Copy(), nil
}

// runtimeFields are the container fields a process spec maps to.
func runtimeFields(c swarm.ContainerSpec) swarm.ContainerSpec {
	return swarm.ContainerSpec{Image: c.Image, Command: c.Command, Args: c.Args, Env: c.Env, Dir: c.Dir, User: c.User, StopGracePeriod: c.StopGracePeriod, StopSignal: c.StopSignal}
}
