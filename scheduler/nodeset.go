package scheduler

import (
	"fmt"
	"slices"

	"github.com/apiary-io/apiary/swarm/api"
)

// HostPort is a port published in host mode: on the node that runs the task.
type HostPort struct {
	Protocol string // tcp, udp or sctp; "" is read as tcp
	Port     uint32
}

func (p HostPort) String() string { return fmt.Sprintf("%d/%s", p.Port, p.Protocol) }

// usage is what one task takes on its node. Tasks of a group share one.
type usage struct {
	serviceID string
	nanoCPUs  int64
	memory    int64
	generic   []genericNeed
	ports     []HostPort
}

// genericNeed is a task's reservation of one generic resource kind: Count
// units, or the one unit called Named when it is set.
type genericNeed struct {
	Kind  string
	Count int64
	Named string
}

// newUsage reads what a task reserves.
func newUsage(t *api.Task) *usage {
	u := &usage{serviceID: t.ServiceID}
	if t.Spec.Resources != nil && t.Spec.Resources.Reservations != nil {
		r := t.Spec.Resources.Reservations
		u.nanoCPUs = r.NanoCPUs
		u.memory = r.MemoryBytes
		for _, g := range r.GenericResources {
			switch {
			case g.DiscreteResourceSpec != nil:
				if g.DiscreteResourceSpec.Value > 0 {
					u.generic = addGeneric(u.generic, genericNeed{Kind: g.DiscreteResourceSpec.Kind, Count: g.DiscreteResourceSpec.Value})
				}
			case g.NamedResourceSpec != nil:
				u.generic = append(u.generic, genericNeed{Kind: g.NamedResourceSpec.Kind, Count: 1, Named: g.NamedResourceSpec.Value})
			}
		}
	}
	u.ports = hostPorts(t)
	return u
}

func addGeneric(gs []genericNeed, g genericNeed) []genericNeed {
	for i := range gs {
		if gs[i].Kind == g.Kind && gs[i].Named == "" {
			gs[i].Count += g.Count
			return gs
		}
	}
	return append(gs, g)
}

// hostPorts lists the task's host-mode published ports that name a port
// (a zero PublishedPort is chosen by the node and cannot conflict). They are
// read from the task's Endpoint: the allocated Ports, or the Spec's ports
// when nothing was allocated yet.
func hostPorts(t *api.Task) []HostPort {
	if t.Endpoint == nil {
		return nil
	}
	ports := t.Endpoint.Ports
	if len(ports) == 0 {
		ports = t.Endpoint.Spec.Ports
	}
	var out []HostPort
	for _, p := range ports {
		if p.PublishMode != api.PublishModeHost || p.PublishedPort == 0 {
			continue
		}
		proto := p.Protocol
		if proto == "" {
			proto = api.PortProtocolTCP
		}
		hp := HostPort{Protocol: proto, Port: p.PublishedPort}
		if !slices.Contains(out, hp) {
			out = append(out, hp)
		}
	}
	return out
}

// NodeInfo is the scheduler's view of one node: the node itself and what the
// tasks on it (placed before, and reserved during this call) take. Plugins
// read it; only the scheduler changes it.
type NodeInfo struct {
	// Node is the node as given. Never nil.
	Node *api.Node
	// CapacityCPU and CapacityMemory are what the node offers (its
	// Description.Resources; zero when it has no description).
	CapacityCPU, CapacityMemory int64
	// ReservedCPU and ReservedMemory are the sums of the reservations of
	// the tasks on the node.
	ReservedCPU, ReservedMemory int64
	// Tasks counts the tasks on the node.
	Tasks int

	genericCap  map[string]int64          // kind -> units offered (counted + named)
	named       map[string][]string       // kind -> named units offered
	genericUsed map[string]int64          // kind -> units reserved
	namedHeld   map[string]map[string]int // kind -> unit -> tasks holding it by name
	services    map[string]int            // service ID -> tasks
	ports       map[HostPort]int          // host port -> tasks publishing it
	taskUsage   map[string]*usage         // task ID -> usage, when the set tracks tasks

	pos  int // position in NodeSet.list
	rank int // position in node ID order, valid when the set is sorted
}

func newNodeInfo(n *api.Node) *NodeInfo {
	ni := &NodeInfo{}
	ni.setNode(n)
	return ni
}

func (ni *NodeInfo) setNode(n *api.Node) {
	ni.Node = n
	ni.CapacityCPU, ni.CapacityMemory = 0, 0
	ni.genericCap, ni.named = nil, nil
	if n.Description == nil {
		return
	}
	r := n.Description.Resources
	ni.CapacityCPU, ni.CapacityMemory = r.NanoCPUs, r.MemoryBytes
	for _, g := range r.GenericResources {
		switch {
		case g.DiscreteResourceSpec != nil:
			if ni.genericCap == nil {
				ni.genericCap = map[string]int64{}
			}
			ni.genericCap[g.DiscreteResourceSpec.Kind] += g.DiscreteResourceSpec.Value
		case g.NamedResourceSpec != nil:
			if ni.genericCap == nil {
				ni.genericCap = map[string]int64{}
			}
			if ni.named == nil {
				ni.named = map[string][]string{}
			}
			k := g.NamedResourceSpec.Kind
			ni.genericCap[k]++
			ni.named[k] = append(ni.named[k], g.NamedResourceSpec.Value)
		}
	}
}

// ID returns the node's ID.
func (ni *NodeInfo) ID() string { return ni.Node.ID }

// FreeCPU returns the node's unreserved CPU in NanoCPUs (negative when
// overcommitted).
func (ni *NodeInfo) FreeCPU() int64 { return ni.CapacityCPU - ni.ReservedCPU }

// FreeMemory returns the node's unreserved memory in bytes.
func (ni *NodeInfo) FreeMemory() int64 { return ni.CapacityMemory - ni.ReservedMemory }

// GenericCapacity returns the units of a generic resource kind the node
// offers, counted and named together.
func (ni *NodeInfo) GenericCapacity(kind string) int64 { return ni.genericCap[kind] }

// FreeGeneric returns the unreserved units of a generic resource kind.
func (ni *NodeInfo) FreeGeneric(kind string) int64 {
	return ni.genericCap[kind] - ni.genericUsed[kind]
}

// NamedUnitFree reports whether the node offers the named unit of a kind
// and no task holds it by name.
func (ni *NodeInfo) NamedUnitFree(kind, name string) bool {
	if !slices.Contains(ni.named[kind], name) {
		return false
	}
	return ni.namedHeld[kind][name] == 0
}

// ServiceTasks returns how many tasks of the service are on the node.
func (ni *NodeInfo) ServiceTasks(serviceID string) int { return ni.services[serviceID] }

// HostPortInUse reports whether a task on the node publishes the port in
// host mode.
func (ni *NodeInfo) HostPortInUse(p HostPort) bool { return ni.ports[p] > 0 }

func (ni *NodeInfo) add(u *usage, sign int) {
	ni.ReservedCPU += int64(sign) * u.nanoCPUs
	ni.ReservedMemory += int64(sign) * u.memory
	ni.Tasks += sign
	if u.serviceID != "" {
		if ni.services == nil {
			ni.services = map[string]int{}
		}
		ni.services[u.serviceID] += sign
		if ni.services[u.serviceID] <= 0 {
			delete(ni.services, u.serviceID)
		}
	}
	for _, g := range u.generic {
		if ni.genericUsed == nil {
			ni.genericUsed = map[string]int64{}
		}
		ni.genericUsed[g.Kind] += int64(sign) * g.Count
		if g.Named != "" {
			if ni.namedHeld == nil {
				ni.namedHeld = map[string]map[string]int{}
			}
			if ni.namedHeld[g.Kind] == nil {
				ni.namedHeld[g.Kind] = map[string]int{}
			}
			ni.namedHeld[g.Kind][g.Named] += sign
		}
	}
	for _, p := range u.ports {
		if ni.ports == nil {
			ni.ports = map[HostPort]int{}
		}
		ni.ports[p] += sign
		if ni.ports[p] <= 0 {
			delete(ni.ports, p)
		}
	}
}

// NodeSet is the scheduler's incremental view of the cluster: every node and
// the tasks placed on them. A manager keeps one up to date from store events
// (SetNode, RemoveNode, AddTask, RemoveTask) and hands it to
// Scheduler.ScheduleSet, which records its decisions in the set, so the next
// call accounts for them even before the store reflects them.
//
// AddTask is idempotent by task ID: re-adding a task (the store event of the
// scheduler's own write-back) moves it rather than counting it twice. A
// NodeSet is not safe for concurrent use.
type NodeSet struct {
	nodes  map[string]*NodeInfo
	list   []*NodeInfo // every node; sorted by ID when sorted is set
	sorted bool
	// tasks maps a task ID to the node ID it is counted on, when tracking.
	tasks map[string]placedTask
	// orphans are tasks counted on a node the set does not have yet.
	orphans map[string]map[string]*usage
	track   bool
}

type placedTask struct {
	node string
	u    *usage
}

// NewNodeSet returns an empty set that tracks tasks by ID.
func NewNodeSet() *NodeSet {
	return &NodeSet{
		nodes: map[string]*NodeInfo{},
		tasks: map[string]placedTask{},
		track: true,
	}
}

// NewNodeSetFromState builds a set from a State, as Schedule does.
func NewNodeSetFromState(st State) *NodeSet {
	s := NewNodeSet()
	s.load(st)
	return s
}

func (s *NodeSet) load(st State) {
	for _, n := range st.Nodes {
		s.SetNode(n)
	}
	for _, t := range st.Tasks {
		s.AddTask(t)
	}
}

// Len returns the number of nodes.
func (s *NodeSet) Len() int { return len(s.list) }

// Node returns the NodeInfo of a node, or nil.
func (s *NodeSet) Node(id string) *NodeInfo { return s.nodes[id] }

// Nodes returns every node's info, sorted by node ID.
func (s *NodeSet) Nodes() []*NodeInfo {
	s.sort()
	return slices.Clone(s.list)
}

// sort orders the list by node ID and numbers the nodes in that order, so
// that the scheduler's ties compare integers rather than strings.
func (s *NodeSet) sort() {
	if s.sorted {
		return
	}
	slices.SortFunc(s.list, func(a, b *NodeInfo) int { return cmpString(a.Node.ID, b.Node.ID) })
	for i, ni := range s.list {
		ni.pos, ni.rank = i, i
	}
	s.sorted = true
}

// SetNode adds a node or replaces its object (availability, labels,
// resources...), keeping the tasks counted on it.
func (s *NodeSet) SetNode(n *api.Node) {
	if n == nil {
		return
	}
	if ni := s.nodes[n.ID]; ni != nil {
		ni.setNode(n)
		return
	}
	ni := newNodeInfo(n)
	s.nodes[n.ID] = ni
	ni.pos = len(s.list)
	s.list = append(s.list, ni)
	s.sorted = false
	for id, u := range s.orphans[n.ID] {
		ni.add(u, +1)
		if s.track {
			s.setUsage(ni, id, u)
		}
	}
	delete(s.orphans, n.ID)
}

// RemoveNode removes a node. Tasks counted on it are forgotten.
func (s *NodeSet) RemoveNode(id string) {
	ni := s.nodes[id]
	if ni == nil {
		return
	}
	i := ni.pos
	last := len(s.list) - 1
	s.list[i] = s.list[last]
	s.list[i].pos = i
	s.list[last] = nil
	s.list = s.list[:last]
	s.sorted = s.sorted && i == last
	delete(s.nodes, id)
	for tid := range ni.taskUsage {
		delete(s.tasks, tid)
	}
}

// TakesResources reports whether a task takes resources on its node: it has a node,
// it is not terminal, and its desired state is at most RUNNING.
func TakesResources(t *api.Task) bool {
	return t != nil && t.NodeID != "" && !t.Status.State.Terminal() && t.DesiredState <= api.TaskStateRunning
}

// AddTask counts a task on its node, or stops counting it when it no longer
// takes resources (ended, or desired to shut down). Adding a known task again updates
// it.
func (s *NodeSet) AddTask(t *api.Task) {
	if t == nil {
		return
	}
	if !TakesResources(t) {
		s.RemoveTask(t.ID)
		return
	}
	if s.track {
		if p, ok := s.tasks[t.ID]; ok {
			if p.node == t.NodeID {
				return // resources of a placed task do not change
			}
			s.RemoveTask(t.ID)
		}
	}
	s.place(t.ID, t.NodeID, newUsage(t))
}

func (s *NodeSet) place(taskID, nodeID string, u *usage) {
	ni := s.nodes[nodeID]
	if ni == nil {
		if !s.track {
			return
		}
		if s.orphans == nil {
			s.orphans = map[string]map[string]*usage{}
		}
		if s.orphans[nodeID] == nil {
			s.orphans[nodeID] = map[string]*usage{}
		}
		s.orphans[nodeID][taskID] = u
		if s.track {
			s.tasks[taskID] = placedTask{node: nodeID, u: u}
		}
		return
	}
	ni.add(u, +1)
	if s.track {
		s.setUsage(ni, taskID, u)
	}
}

func (s *NodeSet) setUsage(ni *NodeInfo, taskID string, u *usage) {
	s.tasks[taskID] = placedTask{node: ni.Node.ID, u: u}
	if ni.taskUsage == nil {
		ni.taskUsage = map[string]*usage{}
	}
	ni.taskUsage[taskID] = u
}

// RemoveTask stops counting a task (deleted, ended, or a write-back of the
// scheduler's decision that failed).
func (s *NodeSet) RemoveTask(id string) {
	if !s.track {
		return
	}
	p, ok := s.tasks[id]
	if !ok {
		return
	}
	delete(s.tasks, id)
	if ni := s.nodes[p.node]; ni != nil {
		ni.add(p.u, -1)
		delete(ni.taskUsage, id)
		return
	}
	delete(s.orphans[p.node], id)
}

// TaskNode returns the node a task is counted on, when the set tracks it.
func (s *NodeSet) TaskNode(id string) (string, bool) {
	p, ok := s.tasks[id]
	return p.node, ok
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
