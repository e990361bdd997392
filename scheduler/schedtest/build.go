package schedtest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/apiary-io/apiary/internal/bytesize"
	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/swarm/api"
)

// NodeBuilder builds a node. Start with Node.
type NodeBuilder struct{ n *api.Node }

// Node starts a node with the given ID: a READY, active worker named after
// its ID, linux/amd64, running a "fake" executor (which runs any task), with
// no CPU or memory to reserve (add some with CPUs and Memory).
func Node(id string) *NodeBuilder {
	return &NodeBuilder{n: &api.Node{
		ID: id,
		Spec: api.NodeSpec{
			Annotations:  api.Annotations{Name: id},
			Role:         api.NodeRoleWorker,
			Availability: api.NodeAvailabilityActive,
		},
		Description: &api.NodeDescription{
			Hostname: id,
			Platform: api.Platform{OS: "linux", Architecture: "amd64"},
			Executor: "fake",
		},
		Status: api.NodeStatus{State: api.NodeStateReady},
	}}
}

// Label sets a node label (node.labels.K).
func (b *NodeBuilder) Label(k, v string) *NodeBuilder {
	if b.n.Spec.Labels == nil {
		b.n.Spec.Labels = map[string]string{}
	}
	b.n.Spec.Labels[k] = v
	return b
}

// EngineLabel sets an engine label (engine.labels.K).
func (b *NodeBuilder) EngineLabel(k, v string) *NodeBuilder {
	if b.n.Description.Engine.Labels == nil {
		b.n.Description.Engine.Labels = map[string]string{}
	}
	b.n.Description.Engine.Labels[k] = v
	return b
}

// Hostname sets the hostname.
func (b *NodeBuilder) Hostname(h string) *NodeBuilder { b.n.Description.Hostname = h; return b }

// Manager makes the node a manager.
func (b *NodeBuilder) Manager() *NodeBuilder { b.n.Spec.Role = api.NodeRoleManager; return b }

// Platform sets the OS and architecture.
func (b *NodeBuilder) Platform(os, arch string) *NodeBuilder {
	b.n.Description.Platform = api.Platform{OS: os, Architecture: arch}
	return b
}

// Executor sets the executor kind ("process", "docker", "fake").
func (b *NodeBuilder) Executor(kind string) *NodeBuilder { b.n.Description.Executor = kind; return b }

// CPUs sets the CPUs the node offers.
func (b *NodeBuilder) CPUs(n float64) *NodeBuilder {
	b.n.Description.Resources.NanoCPUs = int64(n * 1e9)
	return b
}

// Memory sets the memory the node offers, e.g. "4GiB" (see MustParseBytes).
func (b *NodeBuilder) Memory(s string) *NodeBuilder {
	b.n.Description.Resources.MemoryBytes = MustParseBytes(s)
	return b
}

// Generic adds n counted units of a generic resource kind (gpu=2).
func (b *NodeBuilder) Generic(kind string, n int64) *NodeBuilder {
	r := &b.n.Description.Resources
	r.GenericResources = append(r.GenericResources, api.GenericResource{
		DiscreteResourceSpec: &api.DiscreteGenericResource{Kind: kind, Value: n}})
	return b
}

// Named adds named units of a generic resource kind (gpu=GPU-a3f1).
func (b *NodeBuilder) Named(kind string, names ...string) *NodeBuilder {
	r := &b.n.Description.Resources
	for _, name := range names {
		r.GenericResources = append(r.GenericResources, api.GenericResource{
			NamedResourceSpec: &api.NamedGenericResource{Kind: kind, Value: name}})
	}
	return b
}

// Pause sets availability pause.
func (b *NodeBuilder) Pause() *NodeBuilder {
	b.n.Spec.Availability = api.NodeAvailabilityPause
	return b
}

// Drain sets availability drain.
func (b *NodeBuilder) Drain() *NodeBuilder {
	b.n.Spec.Availability = api.NodeAvailabilityDrain
	return b
}

// Down sets the node's state to down.
func (b *NodeBuilder) Down() *NodeBuilder { b.n.Status.State = api.NodeStateDown; return b }

// State sets the node's state.
func (b *NodeBuilder) State(s api.NodeState) *NodeBuilder { b.n.Status.State = s; return b }

// NoDescription removes the node's description, as before it registers.
func (b *NodeBuilder) NoDescription() *NodeBuilder { b.n.Description = nil; return b }

// Build returns a copy of the node.
func (b *NodeBuilder) Build() *api.Node { return b.n.Copy() }

// TaskBuilder builds the tasks of a service. Start with Task.
type TaskBuilder struct {
	t        *api.Task
	replicas int
	on       []string
	firstID  int
}

// Task starts one task of the service with the given ID (also its name), at
// spec version 1, pending, desired RUNNING, with no runtime (any executor
// runs it) and no reservations.
func Task(service string) *TaskBuilder {
	return &TaskBuilder{replicas: 1, t: &api.Task{
		ServiceID:          service,
		ServiceAnnotations: api.Annotations{Name: service},
		SpecVersion:        1,
		DesiredState:       api.TaskStateRunning,
		Status:             api.TaskStatus{State: api.TaskStatePending},
	}}
}

// Replicas sets how many identical tasks to build.
func (b *TaskBuilder) Replicas(n int) *TaskBuilder { b.replicas = n; return b }

// Version sets the spec version (tasks of different versions form different
// groups).
func (b *TaskBuilder) Version(v uint64) *TaskBuilder { b.t.SpecVersion = v; return b }

// Process gives the tasks a process runtime.
func (b *TaskBuilder) Process(cmd ...string) *TaskBuilder {
	if len(cmd) == 0 {
		cmd = []string{"true"}
	}
	b.t.Spec.Process = &api.ProcessSpec{Command: cmd}
	return b
}

// Container gives the tasks a container runtime.
func (b *TaskBuilder) Container(image string) *TaskBuilder {
	b.t.Spec.Container = &api.ContainerSpec{Image: image}
	return b
}

func (b *TaskBuilder) reservations() *api.Resources {
	s := &b.t.Spec
	if s.Resources == nil {
		s.Resources = &api.ResourceRequirements{}
	}
	if s.Resources.Reservations == nil {
		s.Resources.Reservations = &api.Resources{}
	}
	return s.Resources.Reservations
}

func (b *TaskBuilder) placement() *api.Placement {
	if b.t.Spec.Placement == nil {
		b.t.Spec.Placement = &api.Placement{}
	}
	return b.t.Spec.Placement
}

// CPUs reserves CPUs per task.
func (b *TaskBuilder) CPUs(n float64) *TaskBuilder {
	b.reservations().NanoCPUs = int64(n * 1e9)
	return b
}

// Memory reserves memory per task, e.g. "512MiB".
func (b *TaskBuilder) Memory(s string) *TaskBuilder {
	b.reservations().MemoryBytes = MustParseBytes(s)
	return b
}

// Generic reserves n units of a generic resource kind per task.
func (b *TaskBuilder) Generic(kind string, n int64) *TaskBuilder {
	r := b.reservations()
	r.GenericResources = append(r.GenericResources, api.GenericResource{
		DiscreteResourceSpec: &api.DiscreteGenericResource{Kind: kind, Value: n}})
	return b
}

// Named reserves one named unit of a generic resource kind per task.
func (b *TaskBuilder) Named(kind, name string) *TaskBuilder {
	r := b.reservations()
	r.GenericResources = append(r.GenericResources, api.GenericResource{
		NamedResourceSpec: &api.NamedGenericResource{Kind: kind, Value: name}})
	return b
}

// Constraint adds placement constraints ("node.labels.zone==a").
func (b *TaskBuilder) Constraint(exprs ...string) *TaskBuilder {
	p := b.placement()
	p.Constraints = append(p.Constraints, exprs...)
	return b
}

// Spread adds spread preferences, outermost first ("node.labels.dc").
func (b *TaskBuilder) Spread(descriptors ...string) *TaskBuilder {
	p := b.placement()
	for _, d := range descriptors {
		p.Preferences = append(p.Preferences, api.PlacementPreference{Spread: &api.SpreadOver{SpreadDescriptor: d}})
	}
	return b
}

// MaxReplicas bounds the service's tasks per node.
func (b *TaskBuilder) MaxReplicas(n uint64) *TaskBuilder { b.placement().MaxReplicas = n; return b }

// Platform adds a platform the tasks run on.
func (b *TaskBuilder) Platform(os, arch string) *TaskBuilder {
	p := b.placement()
	p.Platforms = append(p.Platforms, api.Platform{OS: os, Architecture: arch})
	return b
}

// HostPort publishes a TCP port in host mode ("8080" or "53/udp").
func (b *TaskBuilder) HostPort(port string) *TaskBuilder {
	proto := api.PortProtocolTCP
	if p, q, ok := strings.Cut(port, "/"); ok {
		port, proto = p, q
	}
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		panic(fmt.Sprintf("schedtest: bad port %q", port))
	}
	if b.t.Endpoint == nil {
		b.t.Endpoint = &api.Endpoint{}
	}
	pc := api.PortConfig{Protocol: proto, TargetPort: uint32(n), PublishedPort: uint32(n), PublishMode: api.PublishModeHost}
	b.t.Endpoint.Spec.Ports = append(b.t.Endpoint.Spec.Ports, pc)
	b.t.Endpoint.Ports = append(b.t.Endpoint.Ports, pc)
	return b
}

// Binpack selects the binpack strategy for the service.
func (b *TaskBuilder) Binpack() *TaskBuilder {
	return b.ServiceLabel(scheduler.StrategyLabel, string(scheduler.StrategyBinpack))
}

// ServiceLabel sets a label of the service, as the tasks carry it.
func (b *TaskBuilder) ServiceLabel(k, v string) *TaskBuilder {
	if b.t.ServiceAnnotations.Labels == nil {
		b.t.ServiceAnnotations.Labels = map[string]string{}
	}
	b.t.ServiceAnnotations.Labels[k] = v
	return b
}

// On places the tasks on nodes, round robin: they are running there already.
func (b *TaskBuilder) On(nodeIDs ...string) *TaskBuilder {
	b.on = nodeIDs
	return b
}

// FirstID numbers the tasks from n ("web.n", "web.n+1", ...); the default
// is 1.
func (b *TaskBuilder) FirstID(n int) *TaskBuilder { b.firstID = n; return b }

// Build returns the tasks, with IDs "<service>.<i>".
func (b *TaskBuilder) Build() []*api.Task {
	first := b.firstID
	if first == 0 {
		first = 1
	}
	out := make([]*api.Task, b.replicas)
	for i := range out {
		t := b.t.Copy()
		t.ID = fmt.Sprintf("%s.%d", b.t.ServiceID, first+i)
		t.Name = t.ID
		t.Slot = uint64(first + i)
		if len(b.on) > 0 {
			t.NodeID = b.on[i%len(b.on)]
			t.Status.State = api.TaskStateRunning
		}
		out[i] = t
	}
	return out
}

// MustParseBytes is ParseBytes that panics on a bad size.
func MustParseBytes(s string) int64 {
	n, err := ParseBytes(s)
	if err != nil {
		panic(err)
	}
	return n
}

// ParseBytes reads a size as Docker's CLI does, in binary units: "512",
// "512B", "64k", "4m", "1.5g", with an optional "B" or "iB" after the unit
// letter ("4GiB" and "4GB" are both 4<<30).
func ParseBytes(s string) (int64, error) {
	n, err := bytesize.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("schedtest: bad size %q: %w", s, err)
	}
	return n, nil
}
