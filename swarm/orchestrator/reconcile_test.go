package orchestrator

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// sim is a tiny in-memory cluster for reconciler tests: it applies plans as
// the store would and lets a test play the workers.
type sim struct {
	t     *testing.T
	now   time.Time
	svc   *api.Service
	tasks map[string]*api.Task
	nodes map[string]*api.Node
	seq   int
	last  Plan
	// health, when set, is the health a running task with a health check
	// reports at each work round (default: healthy at once).
	health func(*api.Task) string
	// exit, when set, ends running tasks: it returns the terminal state a
	// running task reaches at this work round, or 0 to keep it running.
	exit func(*api.Task) api.TaskState
	// retention is the history retention limit (default 5).
	retention int
}

func newSim(t *testing.T, svc *api.Service, nodes ...*api.Node) *sim {
	s := &sim{t: t, now: t0, svc: svc, tasks: map[string]*api.Task{}, nodes: map[string]*api.Node{}}
	for _, n := range nodes {
		s.nodes[n.ID] = n
	}
	return s
}

func replicated(name string, n int64) *api.Service {
	return &api.Service{ID: "svc-" + name, SpecVersion: 1, Spec: api.ServiceSpec{
		Annotations:  api.Annotations{Name: name},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: n}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app", "v1"}}},
	}}
}

func global(name string) *api.Service {
	s := replicated(name, 0)
	s.Spec.Mode = api.ServiceMode{Global: &api.GlobalService{}}
	return s
}

func readyNode(id string) *api.Node {
	return &api.Node{ID: id,
		Spec:        api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive},
		Status:      api.NodeStatus{State: api.NodeStateReady},
		Description: &api.NodeDescription{Hostname: id, Executor: "process", Platform: api.Platform{OS: "linux", Architecture: "amd64"}},
	}
}

func (s *sim) input() Input {
	var ts []*api.Task
	for _, t := range s.tasks {
		ts = append(ts, t.Copy())
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	var svc *api.Service
	if s.svc != nil {
		svc = s.svc.Copy()
	}
	id := ""
	if svc != nil {
		id = svc.ID
	}
	limit := 5
	if s.retention > 0 {
		limit = s.retention
	}
	return Input{Service: svc, ServiceID: id, Tasks: ts, Nodes: s.nodes, RetentionLimit: limit, Now: s.now}
}

// step reconciles once and applies the plan.
func (s *sim) step() Plan {
	p := s.reconcile(s.input())
	s.apply(p)
	return p
}

// reconcile runs Reconcile and fails if it changed its input: the loop
// hands it the store's own objects, the service and nodes as the tasks.
func (s *sim) reconcile(in Input) Plan {
	s.t.Helper()
	seen := func() map[string]string {
		out := map[string]string{}
		for what, v := range map[string]any{"tasks": in.Tasks, "service": in.Service, "nodes": in.Nodes} {
			b, err := json.Marshal(v)
			if err != nil {
				s.t.Fatal(err)
			}
			out[what] = string(b)
		}
		return out
	}
	before := seen()
	p := Reconcile(in)
	for what, after := range seen() {
		if after != before[what] {
			s.t.Fatalf("Reconcile changed the %s of its input", what)
		}
	}
	return p
}

// apply applies a plan as the store would.
func (s *sim) apply(p Plan) {
	for _, t := range p.Create {
		s.seq++
		if _, dup := s.tasks[t.ID]; dup {
			s.t.Fatalf("plan creates existing task %s", t.ID)
		}
		t.Meta.CreatedAt = s.now.Add(time.Duration(s.seq)) // store-assigned, increasing
		s.tasks[t.ID] = t
	}
	for _, t := range p.Update {
		if _, ok := s.tasks[t.ID]; !ok {
			s.t.Fatalf("plan updates missing task %s", t.ID)
		}
		s.tasks[t.ID] = t
	}
	for _, t := range p.Delete {
		delete(s.tasks, t.ID)
	}
	if p.Service != nil {
		s.svc = p.Service
	}
	s.last = p
}

// settle reconciles until the plan is empty (at most 10 rounds).
func (s *sim) settle() {
	for i := 0; i < 10; i++ {
		if s.step().Empty() {
			return
		}
	}
	s.t.Fatal("reconciliation does not settle")
}

// work plays the workers: assigns pending tasks to nodes round-robin, runs
// tasks wanted running, stops tasks wanted stopped.
func (s *sim) work() {
	var nodes []string
	for id, n := range s.nodes {
		if n.Status.State == api.NodeStateReady && n.Spec.Availability == api.NodeAvailabilityActive {
			nodes = append(nodes, id)
		}
	}
	sort.Strings(nodes)
	i := 0
	for _, t := range s.sorted() {
		switch {
		case t.Status.State.Terminal():
		case t.DesiredState > api.TaskStateRunning:
			if t.Status.State >= api.TaskStateAssigned {
				s.setState(t, api.TaskStateShutdown)
			}
		case t.Status.State < api.TaskStateAssigned:
			if t.NodeID == "" && len(nodes) > 0 {
				t.NodeID = nodes[i%len(nodes)]
				i++
			}
			if t.NodeID != "" {
				t.Status.State = api.TaskStateAssigned
			}
			if t.DesiredState == api.TaskStateRunning {
				s.setState(t, api.TaskStateRunning)
			} else {
				s.setState(t, api.TaskStateReady)
			}
		case t.DesiredState == api.TaskStateRunning && t.Status.State < api.TaskStateRunning:
			s.setState(t, api.TaskStateRunning)
		case t.Status.State == api.TaskStateRunning:
			if s.exit != nil {
				if end := s.exit(t); end != 0 {
					s.setState(t, end)
					continue
				}
			}
			if h := s.healthOf(t); h != t.Status.Health {
				t.Status.Health = h
				t.Status.Timestamp = s.now
			}
		}
	}
}

func (s *sim) healthOf(t *api.Task) string {
	if !t.Spec.HasHealthCheck() {
		return ""
	}
	if s.health != nil {
		return s.health(t)
	}
	return api.HealthHealthy
}

// setState records a worker's report: a task moving to RUNNING records when
// it started, and later reports keep it.
func (s *sim) setState(t *api.Task, st api.TaskState) {
	cs := t.Status.ContainerStatus
	if st == api.TaskStateRunning {
		cs = &api.ContainerStatus{PID: 1, StartedAt: s.now}
	}
	t.Status = api.TaskStatus{State: st, Timestamp: s.now, ContainerStatus: cs}
	if st == api.TaskStateRunning && t.Spec.HasHealthCheck() {
		t.Status.Health = api.HealthStarting
	}
}

func (s *sim) sorted() []*api.Task {
	var ts []*api.Task
	for _, t := range s.tasks {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].Slot != ts[j].Slot {
			return ts[i].Slot < ts[j].Slot
		}
		return ts[i].Meta.CreatedAt.Before(ts[j].Meta.CreatedAt)
	})
	return ts
}

// wanted returns the runnable tasks by slot key.
func (s *sim) wanted() map[string][]*api.Task {
	out := map[string][]*api.Task{}
	for _, t := range s.sorted() {
		if runnable(t) {
			out[slotKey(t)] = append(out[slotKey(t)], t)
		}
	}
	return out
}

func (s *sim) running() int {
	n := 0
	for _, t := range s.tasks {
		if runnable(t) && t.Status.State == api.TaskStateRunning {
			n++
		}
	}
	return n
}

// up counts the tasks that serve: wanted, RUNNING and (with a check) healthy.
func (s *sim) up() int {
	n := 0
	for _, t := range s.tasks {
		if runnable(t) && ready(t) {
			n++
		}
	}
	return n
}

// processes counts the tasks whose process runs, wanted or not.
func (s *sim) processes() int {
	n := 0
	for _, t := range s.tasks {
		if t.Status.State == api.TaskStateRunning {
			n++
		}
	}
	return n
}

func (s *sim) converge() {
	for i := 0; i < 20; i++ {
		s.settle()
		s.work()
		if ok, _ := Converged(s.svc, s.list(), s.nodeList()); ok {
			return
		}
	}
	_, why := Converged(s.svc, s.list(), s.nodeList())
	s.t.Fatalf("did not converge: %s", why)
}

func (s *sim) list() []*api.Task { return s.sorted() }

func (s *sim) nodeList() []*api.Node {
	var ns []*api.Node
	for _, n := range s.nodes {
		ns = append(ns, n)
	}
	return ns
}

func slotsOf(m map[string][]*api.Task) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestReplicatedCreatesSlotsFromOne(t *testing.T) {
	s := newSim(t, replicated("web", 3), readyNode("n1"))
	p := s.step()
	if len(p.Create) != 3 {
		t.Fatalf("created %d tasks, want 3", len(p.Create))
	}
	for i, tk := range p.Create {
		if tk.Slot != uint64(i+1) || tk.DesiredState != api.TaskStateRunning || tk.Status.State != api.TaskStateNew {
			t.Errorf("task %d: slot %d desired %s state %s", i, tk.Slot, tk.DesiredState, tk.Status.State)
		}
		if tk.Name != fmt.Sprintf("web.%d", i+1) || tk.ServiceID != "svc-web" || tk.SpecVersion != 1 {
			t.Errorf("task %d: name %q service %q specversion %d", i, tk.Name, tk.ServiceID, tk.SpecVersion)
		}
	}
	if !s.step().Empty() {
		t.Fatal("second reconciliation of an unchanged state is not empty")
	}
}

func TestReplicatedScaleUpFillsLowestFreeSlots(t *testing.T) {
	s := newSim(t, replicated("web", 3), readyNode("n1"))
	s.converge()
	for _, tk := range s.wanted()["2"] {
		delete(s.tasks, tk.ID) // slot 2 vanished
	}
	s.svc.Spec.Mode.Replicated.Replicas = 5
	s.settle()
	if got := slotsOf(s.wanted()); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("slots after scale up = %v, want [1 2 3 4 5]", got)
	}
}

func TestReplicatedScaleDownRemovesHighestSlots(t *testing.T) {
	s := newSim(t, replicated("web", 5), readyNode("n1"))
	s.converge()
	s.svc.Spec.Mode.Replicated.Replicas = 2
	p := s.step()
	removed := map[uint64]bool{}
	for _, tk := range p.Update {
		if tk.DesiredState != api.TaskStateRemove {
			t.Errorf("task %s: desired %s, want remove", tk.ID, tk.DesiredState)
		}
		removed[tk.Slot] = true
	}
	if len(removed) != 3 || !removed[3] || !removed[4] || !removed[5] {
		t.Fatalf("removed slots %v, want 3, 4, 5", removed)
	}
	s.converge()
	s.settle()
	if len(s.tasks) != 2 {
		t.Fatalf("%d tasks left after scale down, want 2 (removed tasks are deleted once stopped)", len(s.tasks))
	}
}

func TestFailedTaskRestartsInItsSlotAfterDelay(t *testing.T) {
	s := newSim(t, replicated("web", 2), readyNode("n1"))
	s.converge()
	old := s.wanted()["1"][0]
	s.setState(old, api.TaskStateFailed)
	p := s.step()
	if len(p.Create) != 1 {
		t.Fatalf("created %d, want 1 replacement", len(p.Create))
	}
	nt := p.Create[0]
	if nt.Slot != 1 || nt.DesiredState != api.TaskStateReady || !nt.StartAfter.Equal(t0.Add(api.DefaultRestartDelay)) {
		t.Fatalf("replacement slot %d desired %s start after %v; want slot 1, ready, +5s", nt.Slot, nt.DesiredState, nt.StartAfter)
	}
	if s.tasks[old.ID].DesiredState != api.TaskStateShutdown {
		t.Fatalf("failed task desired %s, want shutdown", s.tasks[old.ID].DesiredState)
	}
	if !p.WakeAt.Equal(nt.StartAfter) {
		t.Fatalf("WakeAt %v, want %v", p.WakeAt, nt.StartAfter)
	}
	s.now = t0.Add(4 * time.Second)
	s.settle()
	if s.tasks[nt.ID].DesiredState != api.TaskStateReady {
		t.Fatal("replacement started before its delay")
	}
	s.now = t0.Add(5 * time.Second)
	s.settle()
	if s.tasks[nt.ID].DesiredState != api.TaskStateRunning {
		t.Fatal("replacement not started after its delay")
	}
}

func TestOrphanedTaskReplacedAtOnce(t *testing.T) {
	none := &api.RestartPolicy{Condition: api.RestartConditionNone}
	s := newSim(t, replicated("web", 2), readyNode("n1"), readyNode("n2"))
	s.svc.Spec.TaskTemplate.RestartPolicy = none
	s.converge()
	lost := s.wanted()["2"][0]
	s.setState(lost, api.TaskStateOrphaned)
	p := s.step()
	if len(p.Create) != 1 || p.Create[0].DesiredState != api.TaskStateRunning || p.Create[0].Slot != lost.Slot {
		t.Fatalf("orphaned task not replaced at once in its slot, even with restart condition none: %+v", p.Create)
	}
}

func TestRestartPolicyConditions(t *testing.T) {
	for _, tc := range []struct {
		cond    string
		end     api.TaskState
		restart bool
	}{
		{api.RestartConditionAny, api.TaskStateComplete, true},
		{api.RestartConditionAny, api.TaskStateFailed, true},
		{api.RestartConditionOnFailure, api.TaskStateFailed, true},
		{api.RestartConditionOnFailure, api.TaskStateRejected, true},
		{api.RestartConditionOnFailure, api.TaskStateComplete, false},
		{api.RestartConditionNone, api.TaskStateFailed, false},
		{api.RestartConditionNone, api.TaskStateComplete, false},
	} {
		t.Run(tc.cond+"/"+tc.end.String(), func(t *testing.T) {
			s := newSim(t, replicated("web", 1), readyNode("n1"))
			s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Condition: tc.cond}
			s.converge()
			s.setState(s.wanted()["1"][0], tc.end)
			p := s.step()
			if got := len(p.Create) == 1; got != tc.restart {
				t.Fatalf("restarted = %v, want %v", got, tc.restart)
			}
			if !tc.restart && len(s.wanted()["1"]) != 1 {
				t.Fatal("a task that is not restarted must keep its slot (no new slot is opened)")
			}
		})
	}
}

func TestRestartMaxAttemptsWithinWindow(t *testing.T) {
	s := newSim(t, replicated("web", 1), readyNode("n1"))
	zero := time.Duration(0)
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Condition: api.RestartConditionAny, Delay: &zero, MaxAttempts: 2, Window: time.Minute}
	s.converge()
	restarts := 0
	for i := 0; i < 4; i++ {
		s.setState(s.wanted()["1"][0], api.TaskStateFailed)
		if len(s.step().Create) == 1 {
			restarts++
		}
		s.work()
	}
	if restarts != 2 {
		t.Fatalf("restarted %d times, want 2 (max attempts)", restarts)
	}
	// Outside the window the count starts afresh.
	s.now = s.now.Add(2 * time.Minute)
	cur := s.wanted()["1"][0]
	s.setState(cur, api.TaskStateFailed)
	if len(s.step().Create) != 1 {
		t.Fatal("no restart after the window passed")
	}
}

func TestDrainedNodeTasksMove(t *testing.T) {
	s := newSim(t, replicated("web", 2), readyNode("n1"), readyNode("n2"))
	s.converge()
	s.nodes["n1"].Spec.Availability = api.NodeAvailabilityDrain
	s.converge()
	for _, ts := range s.wanted() {
		for _, tk := range ts {
			if tk.NodeID == "n1" {
				t.Fatalf("task %s still wanted on drained node", tk.ID)
			}
		}
	}
	if s.running() != 2 {
		t.Fatalf("%d running, want 2", s.running())
	}
}

func TestGlobalFollowsNodes(t *testing.T) {
	s := newSim(t, global("agent"), readyNode("n1"), readyNode("n2"))
	s.converge()
	if s.running() != 2 {
		t.Fatalf("running %d, want 2", s.running())
	}
	s.nodes["n3"] = readyNode("n3")
	s.converge()
	if len(s.wanted()["n3"]) != 1 || s.running() != 3 {
		t.Fatalf("no task on added node n3: %v", slotsOf(s.wanted()))
	}
	s.nodes["n2"].Spec.Availability = api.NodeAvailabilityDrain
	s.converge()
	if len(s.wanted()["n2"]) != 0 {
		t.Fatal("task still wanted on drained node n2")
	}
	s.nodes["n3"].Status.State = api.NodeStateDown
	s.converge()
	if len(s.wanted()["n3"]) != 0 {
		t.Fatal("task still wanted on down node n3")
	}
	delete(s.nodes, "n1")
	s.settle()
	for _, tk := range s.tasks {
		if tk.NodeID == "n1" && tk.DesiredState != api.TaskStateRemove {
			t.Fatalf("task on removed node n1 desired %s, want remove", tk.DesiredState)
		}
	}
	s.nodes["n3"].Status.State = api.NodeStateReady
	s.converge()
	if len(s.wanted()["n3"]) != 1 {
		t.Fatal("no task on n3 after it came back")
	}
}

func TestGlobalConstraints(t *testing.T) {
	s := newSim(t, global("agent"), readyNode("n1"), readyNode("n2"))
	s.nodes["n1"].Spec.Labels = map[string]string{"zone": "a"}
	s.svc.Spec.TaskTemplate.Placement = &api.Placement{Constraints: []string{"node.labels.zone==a"}}
	s.converge()
	if got := slotsOf(s.wanted()); fmt.Sprint(got) != "[n1]" {
		t.Fatalf("global tasks on %v, want [n1]", got)
	}
	s.nodes["n1"].Spec.Labels = nil
	s.converge()
	if len(s.wanted()) != 0 {
		t.Fatal("task kept after the node lost the label")
	}
}

func update(s *sim, cfg api.UpdateConfig) {
	prev := s.svc.Spec.Copy()
	s.svc.PreviousSpec = &prev
	s.svc.Spec.TaskTemplate.Process.Command = []string{"app", "v2"}
	s.svc.Spec.UpdateConfig = &cfg
	s.svc.SpecVersion++
	s.svc.UpdateStatus = nil
}

func TestRollingUpdateStopFirstOneAtATimeWithDelay(t *testing.T) {
	s := newSim(t, replicated("web", 3), readyNode("n1"))
	s.converge()
	update(s, api.UpdateConfig{Parallelism: 1, Delay: 10 * time.Second, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause})
	var starts []time.Time
	maxRunning := 0
	for i := 0; i < 200 && !(s.svc.UpdateStatus != nil && s.svc.UpdateStatus.State == api.UpdateStateCompleted); i++ {
		p := s.step()
		if s.svc.UpdateStatus == nil || (s.svc.UpdateStatus.State != api.UpdateStateUpdating && s.svc.UpdateStatus.State != api.UpdateStateCompleted) {
			t.Fatalf("update status %+v", s.svc.UpdateStatus)
		}
		s.work()
		for _, tk := range p.Create {
			starts = append(starts, s.now)
			_ = tk
		}
		// Stop-first never runs more than the desired count.
		if r := s.running(); r > maxRunning {
			maxRunning = r
		}
		if !p.WakeAt.IsZero() {
			s.now = p.WakeAt
		} else {
			s.now = s.now.Add(time.Second)
		}
	}
	if s.svc.UpdateStatus.State != api.UpdateStateCompleted {
		t.Fatalf("update did not complete: %+v", s.svc.UpdateStatus)
	}
	if len(starts) != 3 {
		t.Fatalf("%d replacements, want 3", len(starts))
	}
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 10*time.Second {
			t.Fatalf("replacements %d and %d only %v apart, want >= 10s delay", i-1, i, gap)
		}
	}
	if maxRunning > 3 {
		t.Fatalf("stop-first ran %d tasks at once, more than the 3 desired", maxRunning)
	}
	for _, ts := range s.wanted() {
		if !UpToDate(ts[0], s.svc) {
			t.Fatal("a slot still runs the old template")
		}
	}
}

func TestRollingUpdateStartFirstNeverBelowDesired(t *testing.T) {
	s := newSim(t, replicated("web", 3), readyNode("n1"))
	s.converge()
	update(s, api.UpdateConfig{Parallelism: 2, Order: api.UpdateOrderStartFirst, FailureAction: api.UpdateFailureActionPause})
	for i := 0; i < 50 && s.svc.UpdateStatus.GetState() != api.UpdateStateCompleted; i++ {
		s.step()
		if r := s.running(); r < 3 {
			t.Fatalf("start-first dropped to %d running", r)
		}
		s.work()
		if r := s.running(); r < 3 {
			t.Fatalf("start-first dropped to %d running", r)
		}
		s.now = s.now.Add(time.Second)
	}
	if s.svc.UpdateStatus.GetState() != api.UpdateStateCompleted {
		t.Fatalf("update did not complete: %+v", s.svc.UpdateStatus)
	}
}

func TestRollingUpdatePausesOnFailure(t *testing.T) {
	s := newSim(t, replicated("web", 3), readyNode("n1"))
	s.converge()
	update(s, api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause})
	p := s.step()
	s.work()
	s.step() // promote the successor once its predecessor stopped
	s.work()
	nt := p.Create[0]
	s.setState(s.tasks[nt.ID], api.TaskStateFailed)
	s.settle()
	if s.svc.UpdateStatus.State != api.UpdateStatePaused {
		t.Fatalf("update state %q, want paused", s.svc.UpdateStatus.State)
	}
	stale := 0
	for _, ts := range s.wanted() {
		if !UpToDate(ts[len(ts)-1], s.svc) {
			stale++
		}
	}
	if stale != 2 {
		t.Fatalf("%d slots stale after pause, want 2 (no further batch)", stale)
	}
}

func TestRollingUpdateRollsBackOnFailure(t *testing.T) {
	s := newSim(t, replicated("web", 2), readyNode("n1"))
	s.converge()
	update(s, api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionRollback})
	p := s.step()
	s.work()
	s.step()
	s.work()
	s.setState(s.tasks[p.Create[0].ID], api.TaskStateFailed)
	s.step()
	if s.svc.UpdateStatus.State != api.UpdateStateRollbackStarted || s.svc.Spec.TaskTemplate.Process.Command[1] != "v1" {
		t.Fatalf("after failure: state %q command %v; want rollback_started to v1", s.svc.UpdateStatus.State, s.svc.Spec.TaskTemplate.Process.Command)
	}
	for i := 0; i < 30 && s.svc.UpdateStatus.State != api.UpdateStateRollbackCompleted; i++ {
		s.step()
		s.work()
		s.now = s.now.Add(time.Second)
	}
	if s.svc.UpdateStatus.State != api.UpdateStateRollbackCompleted {
		t.Fatalf("rollback did not complete: %+v", s.svc.UpdateStatus)
	}
}

func TestDeletedServiceTasksRemoved(t *testing.T) {
	s := newSim(t, replicated("web", 3), readyNode("n1"))
	s.converge()
	s.tasks["pending"] = &api.Task{ID: "pending", ServiceID: "svc-web", Slot: 9, DesiredState: api.TaskStateRunning, Status: api.TaskStatus{State: api.TaskStatePending}}
	s.svc = nil
	s.step()
	for _, tk := range s.tasks {
		if tk.DesiredState != api.TaskStateRemove {
			t.Fatalf("task %s desired %s, want remove", tk.ID, tk.DesiredState)
		}
	}
	if _, ok := s.tasks["pending"]; ok {
		t.Fatal("a never-assigned task of a deleted service was not deleted")
	}
	s.work()
	s.step()
	if len(s.tasks) != 0 {
		t.Fatalf("%d tasks left after their service was deleted and they stopped", len(s.tasks))
	}
}

func TestHistoryTrimmedToRetentionLimit(t *testing.T) {
	s := newSim(t, replicated("web", 1), readyNode("n1"))
	zero := time.Duration(0)
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &zero}
	s.converge()
	for i := 0; i < 9; i++ {
		s.setState(s.wanted()["1"][0], api.TaskStateFailed)
		s.now = s.now.Add(time.Second)
		s.settle()
		s.work()
	}
	if len(s.tasks) != 1+5 {
		t.Fatalf("slot holds %d tasks, want 1 current + 5 history", len(s.tasks))
	}
}
