package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/process"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

type options struct {
	keep        bool
	workers     int
	port        int
	updateDelay time.Duration
	stepTimeout time.Duration
	verbose     bool
	dataDir     string
	logger      *slog.Logger
	// level is logger's: teardown silences it unless --verbose.
	level *slog.LevelVar
}

type node struct {
	name   string
	host   netip.Addr
	listen string // where its gRPC services answer
	node   *swarm.Node
	exec   *process.Executor
	dead   bool // killed in the story: its address answers no more
}

type demo struct {
	opts    options
	out     io.Writer
	dir     string
	tmp     bool
	mgr     *swarm.Manager
	client  *swarm.Client
	nodes   []*node // the manager first, then the workers
	stepNum int

	published int // app's published port (opts.port unless taken)
	target    int // the port app and db listen on behind their VIPs
	dbVIP     string
	services  []string // created, removed at teardown
	networks  []string
	lagged    int // published-port checks some node passed with only some replicas
}

const steps = 7

// indent lines up the mesh checks under a step's result.
const indent = "      "

// step prints one line: the step, what happened, and how long it took.
func (d *demo) step(what string, start time.Time, result string) {
	d.stepNum++
	fmt.Fprintf(d.out, "[%d/%d] %-44s %6.2fs  %s\n", d.stepNum, steps, what, time.Since(start).Seconds(), result)
}

// detail prints lines under the step.
func (d *demo) detail(lines string) {
	fmt.Fprintln(d.out, indent+strings.ReplaceAll(lines, "\n", "\n"+indent))
}

func (d *demo) story(ctx context.Context) error {
	start := time.Now()
	if err := d.setup(ctx); err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	d.step(fmt.Sprintf("start 1 manager and %d workers", d.opts.workers), start, fmt.Sprintf("nodes ready (data in %s)", d.dir))
	for _, n := range d.nodes {
		d.detail(d.describe(ctx, n))
	}

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	grace := 5 * time.Second
	// Both services are the web app; db stands in for a database, known
	// to app by name only.
	task := func(version string) api.TaskSpec {
		return api.TaskSpec{
			Process:  &api.ProcessSpec{Command: []string{self, "webapp"}, Env: []string{"APP_VERSION=" + version}, StopGracePeriod: &grace},
			Networks: []api.NetworkAttachmentConfig{{Target: "app"}},
		}
	}

	start = time.Now()
	if _, err := d.client.CreateNetwork(ctx, api.NetworkSpec{Annotations: api.Annotations{Name: "app"}}); err != nil {
		return fmt.Errorf("network create app: %w", err)
	}
	d.networks = append(d.networks, "app")
	db, err := d.client.CreateService(ctx, api.ServiceSpec{
		Annotations:  api.Annotations{Name: "db"},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 1}},
		TaskTemplate: task("v1"),
		// Not published: db is reached on its VIP, by name, from the
		// network. The host data path needs its target port declared.
		EndpointSpec: &api.EndpointSpec{Ports: []api.PortConfig{{TargetPort: uint32(d.target), PublishMode: api.PublishModeHost}}},
	})
	if err != nil {
		return fmt.Errorf("service create db: %w", err)
	}
	d.services = append(d.services, "db")
	if err := d.converge(ctx, db.ID); err != nil {
		return err
	}
	if db, err = d.client.GetService(ctx, db.ID); err != nil {
		return err
	}
	d.dbVIP = net.JoinHostPort(db.Endpoint.HostVIP, strconv.Itoa(d.target))
	answers, err := d.probe(ctx, db.ID, "v1")
	if err != nil {
		return err
	}
	d.step("network create app; service create db", start, fmt.Sprintf("%s; %s; VIP %s", d.placement(ctx, db.ID), answers, d.dbVIP))

	spec := api.ServiceSpec{
		Annotations:  api.Annotations{Name: "app"},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 3}},
		TaskTemplate: task("v1"),
		EndpointSpec: &api.EndpointSpec{Ports: []api.PortConfig{{TargetPort: uint32(d.target), PublishedPort: uint32(d.published)}}},
		UpdateConfig: &api.UpdateConfig{Parallelism: 1, Delay: d.opts.updateDelay, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause},
	}
	start = time.Now()
	svc, err := d.client.CreateService(ctx, spec)
	if err != nil {
		return err
	}
	d.services = append(d.services, "app")
	if err := d.converge(ctx, svc.ID); err != nil {
		return err
	}
	if answers, err = d.probe(ctx, svc.ID, "v1"); err != nil {
		return err
	}
	d.step(fmt.Sprintf("service create app --replicas 3 -p %d:%d", d.published, d.target), start, d.placement(ctx, svc.ID)+"; "+answers)
	if err := d.checkMesh(ctx, svc.ID, "v1"); err != nil {
		return err
	}

	start = time.Now()
	if _, err := d.client.ScaleService(ctx, "app", 5); err != nil {
		return err
	}
	if err := d.converge(ctx, svc.ID); err != nil {
		return err
	}
	d.step("service scale app=5", start, d.placement(ctx, svc.ID))
	if err := d.checkMesh(ctx, svc.ID, "v1"); err != nil {
		return err
	}

	if err := d.killWorker(ctx, svc.ID); err != nil {
		return err
	}
	if err := d.checkMesh(ctx, svc.ID, "v1"); err != nil {
		return err
	}

	if err := d.rollingUpdate(ctx, svc.ID); err != nil {
		return err
	}
	if err := d.checkMesh(ctx, svc.ID, "v2"); err != nil {
		return err
	}

	start = time.Now()
	if _, err := d.client.ScaleService(ctx, "app", 2); err != nil {
		return err
	}
	if err := d.converge(ctx, svc.ID); err != nil {
		return err
	}
	if answers, err = d.probe(ctx, svc.ID, "v2"); err != nil {
		return err
	}
	d.step("service scale app=2", start, d.placement(ctx, svc.ID)+"; "+answers)
	return d.checkMesh(ctx, svc.ID, "v2")
}

// describe is a node's line: its address and the ports of its gRPC
// services, gossip and DNS server.
func (d *demo) describe(ctx context.Context, n *node) string {
	gossip := "?"
	if rec, err := d.client.GetNode(ctx, n.node.NodeID()); err == nil {
		gossip = port(rec.Status.GossipAddr)
	}
	line := fmt.Sprintf("%-9s %-12s gRPC :%s  gossip :%s  DNS :%s", n.name, n.host, port(n.listen), gossip, port(n.node.DNSAddr()))
	if n.node.Manager() != nil {
		line += "  (drained: it schedules, workers run the tasks)"
	}
	return line
}

// port is the port of a HOST:PORT ("?" when there is none).
func port(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		return p
	}
	return "?"
}

// keepHint says how to reach the cluster the demo leaves running.
func (d *demo) keepHint() string {
	return fmt.Sprintf("cluster left running: curl http://%s/ answers on every node's address, and\n"+
		"  APIARY_SOCKET=%s apiaryctl service ps app\n"+
		"drives it (go build ./examples/apiaryctl); press Ctrl-C to stop it",
		net.JoinHostPort(d.nodes[0].host.String(), strconv.Itoa(d.published)), swarm.ControlSocket(filepath.Join(d.dir, d.nodes[0].name)))
}

// checkMesh prints the routing mesh's checks after a step: app's published
// port on every live node answers from every running replica, and app
// reaches db by name.
func (d *demo) checkMesh(ctx context.Context, serviceID, version string) error {
	tasks, err := d.running(ctx, serviceID)
	if err != nil {
		return err
	}
	var want []string
	for _, t := range tasks {
		want = append(want, fmt.Sprintf("app.%d", t.Slot))
	}
	sortReplicas(want)
	var targets []meshTarget
	var down []string
	for _, n := range d.nodes {
		if n.dead {
			down = append(down, n.name)
			continue
		}
		targets = append(targets, meshTarget{name: n.name, addr: net.JoinHostPort(n.host.String(), strconv.Itoa(d.published)), dns: n.node.DNSAddr()})
	}
	line, lagged, err := checkIngress(ctx, d.opts.stepTimeout, d.opts.stepTimeout, targets, down, d.published, d.target, want, version)
	if err != nil {
		var running []string
		for _, t := range tasks {
			var ports []string
			for _, p := range t.Status.PortStatus {
				ports = append(ports, strconv.Itoa(int(p.PublishedPort)))
			}
			running = append(running, fmt.Sprintf("app.%d (task %s on %s, port %s)", t.Slot, strings.ToLower(t.ID), d.nameOf(ctx, t.NodeID), strings.Join(ports, ",")))
		}
		sort.Strings(running)
		return fmt.Errorf("%w\n  running: %s", err, strings.Join(running, ", "))
	}
	if lagged {
		d.lagged++
	}
	d.detail(line)
	if line, err = checkDB(ctx, d.opts.stepTimeout, targets, d.published, d.target, d.dbVIP); err != nil {
		return err
	}
	d.detail(line)
	return nil
}

func (d *demo) setup(ctx context.Context) error {
	d.dir = d.opts.dataDir
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "apiary-demo-")
		if err != nil {
			return err
		}
		d.dir, d.tmp = dir, true
	}
	hosts, err := pickHosts(d.opts.workers + 1)
	if err != nil {
		return err
	}
	if d.published, err = freeOnAll(hosts, d.opts.port); err != nil {
		return fmt.Errorf("published port: %w", err)
	}
	if d.published != d.opts.port {
		fmt.Fprintf(d.out, "port %d is taken on the nodes' addresses; app is published on %d instead\n", d.opts.port, d.published)
	}
	if d.target, err = targetPort(hosts, d.published); err != nil {
		return fmt.Errorf("target port: %w", err)
	}
	if d.target != preferredTarget {
		fmt.Fprintf(d.out, "this process cannot listen on port %d (not root, or taken); the services' VIPs use %d instead\n", preferredTarget, d.target)
	}

	var token string
	for i, host := range hosts {
		name := fmt.Sprintf("worker-%d", i)
		if i == 0 {
			name = "manager"
		}
		n, err := d.startNode(ctx, name, host, token)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		d.nodes = append(d.nodes, n)
		if i > 0 {
			continue
		}
		d.mgr = n.node.Manager()
		d.client = d.mgr.Client()
		cl, err := d.waitCluster(ctx)
		if err != nil {
			return err
		}
		token = cl.JoinTokens.Worker
		// As Swarm's managers often are: the manager schedules, workers
		// run. Its routing mesh still answers every published port.
		if _, err := d.client.EditNode(ctx, n.node.NodeID(), func(s *api.NodeSpec) error {
			s.Availability = api.NodeAvailabilityDrain
			return nil
		}); err != nil {
			return fmt.Errorf("drain the manager: %w", err)
		}
	}
	return d.waitReady(ctx)
}

// startNode starts a node on host: the cluster's first manager without a
// token, else a worker joining it. Its mesh (gossip, DNS, ingress) is on
// host too, on the default ports where they are free.
func (d *demo) startNode(ctx context.Context, name string, host netip.Addr, token string) (*node, error) {
	dir := filepath.Join(d.dir, name)
	pcfg := process.DefaultConfig()
	pcfg.DataDir = filepath.Join(dir, "executor")
	pcfg.Hostname = name
	pcfg.Logger = d.opts.logger.With("node", name)
	ex, err := process.New(pcfg)
	if err != nil {
		return nil, err
	}
	listen, err := listenAddr(host)
	if err != nil {
		ex.Close()
		return nil, err
	}
	cfg := swarm.DefaultNodeConfig()
	cfg.DataDir, cfg.ListenAddr, cfg.Executor = dir, listen, ex
	cfg.Logger = d.opts.logger.With("node", name)
	cfg.Mesh = swarm.MeshConfig{DataPath: swarm.DataPathHost, GossipAddr: portOrZero(host, gossipPort), DNSAddr: portOrZero(host, dnsPort)}
	var sn *swarm.Node
	if token == "" {
		sn, err = swarm.InitNode(ctx, cfg)
	} else {
		sn, err = swarm.JoinNode(ctx, cfg, token, []string{d.nodes[0].listen})
	}
	if err != nil {
		ex.Close()
		return nil, err
	}
	return &node{name: name, host: host, listen: listen, node: sn, exec: ex}, nil
}

// waitCluster waits for the new cluster's record (the manager leads).
func (d *demo) waitCluster(ctx context.Context) (*api.Cluster, error) {
	var cl *api.Cluster
	_, err := waitFor(ctx, d.opts.stepTimeout, "the manager to lead", func(ctx context.Context) (bool, string) {
		c, err := d.client.GetCluster(ctx)
		if err != nil {
			return false, err.Error()
		}
		cl = c
		return true, ""
	})
	return cl, err
}

// waitReady waits until every node is ready.
func (d *demo) waitReady(ctx context.Context) error {
	_, err := waitFor(ctx, d.opts.stepTimeout, "every node ready", func(ctx context.Context) (bool, string) {
		nodes, err := d.client.ListNodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range nodes {
			if n.Status.State == api.NodeStateReady {
				ready++
			}
		}
		return ready == len(d.nodes), fmt.Sprintf("%d of %d ready", ready, len(d.nodes))
	})
	return err
}

func (d *demo) converge(ctx context.Context, serviceID string) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.stepTimeout)
	defer cancel()
	if err := d.client.WaitConverged(ctx, serviceID); err != nil {
		return err
	}
	return d.mgr.Err()
}

// running returns the service's tasks that are wanted and running.
func (d *demo) running(ctx context.Context, serviceID string) ([]*api.Task, error) {
	tasks, err := d.client.ListTasks(ctx, swarm.TaskFilter{Service: serviceID, DesiredStates: []api.TaskState{api.TaskStateRunning}})
	if err != nil {
		return nil, err
	}
	var out []*api.Task
	for _, t := range tasks {
		if t.Status.State == api.TaskStateRunning {
			out = append(out, t)
		}
	}
	return out, nil
}

// placement says how many of the service's tasks run on each node.
func (d *demo) placement(ctx context.Context, serviceID string) string {
	tasks, err := d.running(ctx, serviceID)
	if err != nil {
		return err.Error()
	}
	per := map[string]int{}
	for _, t := range tasks {
		per[d.nameOf(ctx, t.NodeID)]++
	}
	var parts []string
	for n, c := range per {
		parts = append(parts, fmt.Sprintf("%s:%d", n, c))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d running (%s)", len(tasks), strings.Join(parts, " "))
}

func (d *demo) nameOf(ctx context.Context, nodeID string) string {
	n, err := d.client.GetNode(ctx, nodeID)
	if err != nil || n.Description == nil {
		return nodeID
	}
	return n.Description.Hostname
}

func (d *demo) nodeOf(id string) *node {
	for _, n := range d.nodes {
		if n.node.NodeID() == id {
			return n
		}
	}
	return nil
}

// killWorker kills the worker with the most tasks, as if its machine died,
// and waits for its tasks to run elsewhere.
func (d *demo) killWorker(ctx context.Context, serviceID string) error {
	tasks, err := d.running(ctx, serviceID)
	if err != nil {
		return err
	}
	count := map[string]int{}
	for _, t := range tasks {
		count[t.NodeID]++
	}
	var victim *node
	for _, n := range d.nodes[1:] {
		if victim == nil || count[n.node.NodeID()] > count[victim.node.NodeID()] {
			victim = n
		}
	}
	start := time.Now()
	d.kill(ctx, victim)
	// The managers learn of the death only from the missing heartbeats,
	// the other nodes' routing meshes from gossip.
	if err := d.waitNodeDown(ctx, victim.node.NodeID()); err != nil {
		return fmt.Errorf("%s: %w", victim.name, err)
	}
	if err := d.converge(ctx, serviceID); err != nil {
		return err
	}
	// Converged means every replica runs; make sure none is on the dead node.
	tasks, err = d.running(ctx, serviceID)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if t.NodeID == victim.node.NodeID() {
			return fmt.Errorf("task %s still counted on dead node %s", t.ID, victim.name)
		}
	}
	n, err := d.client.GetNode(ctx, victim.node.NodeID())
	if err != nil {
		return err
	}
	d.step(fmt.Sprintf("%s dies (%d tasks on it)", victim.name, count[victim.node.NodeID()]), start,
		fmt.Sprintf("node %s; rescheduled: %s", n.Status.State, d.placement(ctx, serviceID)))
	return nil
}

func (d *demo) waitNodeDown(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.stepTimeout)
	defer cancel()
	for {
		n, err := d.client.GetNode(ctx, id)
		if err != nil {
			return err
		}
		if n.Status.State == api.NodeStateDown {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not declared down: %w (state %s)", ctx.Err(), n.Status.State)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// rollingUpdate rolls v2 out and shows, from the task timestamps, that the
// tasks were replaced one at a time with the delay in between.
func (d *demo) rollingUpdate(ctx context.Context, serviceID string) error {
	start := time.Now()
	svc, err := d.client.GetService(ctx, serviceID)
	if err != nil {
		return err
	}
	spec := svc.Spec.Copy()
	spec.TaskTemplate.Process.Env = []string{"APP_VERSION=v2"}
	if _, err := d.client.UpdateService(ctx, serviceID, svc.Meta.Version, spec); err != nil {
		return err
	}
	if err := d.converge(ctx, serviceID); err != nil {
		return err
	}
	tasks, err := d.running(ctx, serviceID)
	if err != nil {
		return err
	}
	var starts []time.Time
	for _, t := range tasks {
		starts = append(starts, t.Status.Timestamp)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	var gaps []string
	for i := 1; i < len(starts); i++ {
		gap := starts[i].Sub(starts[i-1])
		if gap < d.opts.updateDelay {
			return fmt.Errorf("rolling update: tasks started %v apart, less than the %v delay", gap, d.opts.updateDelay)
		}
		gaps = append(gaps, fmt.Sprintf("%.1fs", gap.Seconds()))
	}
	answers, err := d.probe(ctx, serviceID, "v2")
	if err != nil {
		return err
	}
	d.step(fmt.Sprintf("service update app (v2, delay %v)", d.opts.updateDelay), start,
		fmt.Sprintf("%d replaced one at a time, gaps %s; %s", len(tasks), strings.Join(gaps, " "), answers))
	return nil
}

// probe asks every running task over HTTP who it is, reading its address
// from the task's own log, and checks it runs the expected version.
func (d *demo) probe(ctx context.Context, serviceID, version string) (string, error) {
	tasks, err := d.running(ctx, serviceID)
	if err != nil {
		return "", err
	}
	ok := 0
	for _, t := range tasks {
		n := d.nodeOf(t.NodeID)
		if n == nil {
			return "", fmt.Errorf("task %s runs on an unknown node %s", t.ID, t.NodeID)
		}
		url, err := d.address(ctx, n, t.ID)
		if err != nil {
			return "", fmt.Errorf("task %s: %w", t.ID, err)
		}
		body, _, err := fetch(ctx, url)
		if err != nil {
			return "", fmt.Errorf("task %s at %s: %w", t.ID, url, err)
		}
		if !strings.Contains(body, " "+version+" ") {
			return "", fmt.Errorf("task %s answered %q, want version %s", t.ID, strings.TrimSpace(body), version)
		}
		ok++
	}
	return fmt.Sprintf("%d/%d answer HTTP with %s", ok, len(tasks), version), nil
}

// address waits for the task's "listening on" line in its log.
func (d *demo) address(ctx context.Context, n *node, taskID string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc, err := n.node.Worker().Logs(ctx, taskID, executor.LogOptions{})
		if err == nil {
			sc := bufio.NewScanner(rc)
			for sc.Scan() {
				if i := strings.Index(sc.Text(), "http://"); i >= 0 {
					rc.Close()
					return strings.Fields(sc.Text()[i:])[0], nil
				}
			}
			rc.Close()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no address in its log after 10s (last error: %v)", err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kill stops a node as if its machine died: its tasks are killed, its
// agent stops heartbeating, and its routing mesh (gossip, DNS, ingress)
// goes quiet.
func (d *demo) kill(ctx context.Context, n *node) {
	if w := n.node.Worker(); w != nil {
		if err := w.Kill(ctx); err != nil {
			d.opts.logger.Error("kill tasks", "node", n.name, "err", err)
		}
	}
	n.node.Stop()
	n.dead = true
}

// teardown removes the services and the network so the tasks stop, then
// stops the nodes, killing whatever still runs, and removes the temporary
// directory.
func (d *demo) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !d.opts.verbose {
		// Nodes stopping one after the other log errors about the
		// others (gossip to a closed peer, sessions cut): the story is
		// over, and they would read as its failure.
		d.opts.level.Set(slog.LevelError + 4)
	}
	if d.client != nil {
		removed := false
		for _, s := range d.services {
			if err := d.client.RemoveService(ctx, s); err == nil {
				removed = true
			}
		}
		if removed {
			d.waitNoTasks(ctx)
		}
		for _, nw := range d.networks {
			_ = d.client.RemoveNetwork(ctx, nw)
		}
	}
	// Workers first: the manager is their way to the cluster.
	for i := len(d.nodes) - 1; i >= 0; i-- {
		if n := d.nodes[i]; !n.dead {
			d.kill(ctx, n)
		}
	}
	for _, n := range d.nodes {
		_ = n.exec.Close()
	}
	if d.tmp {
		os.RemoveAll(d.dir)
	}
}

func (d *demo) waitNoTasks(ctx context.Context) {
	_, _ = waitFor(ctx, 30*time.Second, "every task gone", func(ctx context.Context) (bool, string) {
		tasks, err := d.client.ListTasks(ctx, swarm.TaskFilter{})
		return err != nil || len(tasks) == 0, fmt.Sprint(len(tasks), " tasks")
	})
}
