// Package multihost_test brings an Apiary cluster up as Docker containers,
// one container per host, and breaks it the way hosts break: issue 5's
// multi-host Must-show.
//
// The image is built FROM scratch, through the Docker API, from the static
// apiaryd, apiaryctl and webapp binaries. Three managers and two workers
// run on one private bridge network at fixed addresses; the test drives
// the cluster with apiaryctl exec'd inside a manager container, and checks
// that a replicated service of the webapp (tasks are processes inside the
// node containers) converges after each fault:
//
//  1. a worker container is stopped: its node goes down and its tasks run
//     elsewhere;
//  2. a manager is disconnected from the network: the other two keep the
//     quorum, the service stays converged and scales; once reconnected at
//     the same address the manager is reachable again, sees the same
//     state, and the tasks the cluster replaced meanwhile are gone from its
//     container;
//  3. the stopped worker comes back (a new container on the same data
//     volume and address running `apiaryd run`) and is ready again.
//
// Convergence is checked through the cluster (node ls, service ps, service
// logs, service ls, all --format json) and against the containers
// themselves: each runs exactly the webapp processes of its tasks.
//
// Environment:
//
//	CI=true                     an unreachable Docker engine fails the test (otherwise: skip)
//	APIARY_MULTIHOST_CUT=leader fault 2 cuts the leader off (default: a follower)
//	APIARY_MULTIHOST_KEEP=1     a failed run leaves its containers for inspection
//
// Each run labels what it makes (io.apiary.multihost.run) and removes it at
// the end; leftovers of runs whose process is gone are removed at start.
package multihost_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/apiary-io/apiary/swarm/api"
)

const (
	// labelRun marks every object the test makes (containers, network,
	// volumes, image) with the run's ID.
	labelRun = "io.apiary.multihost.run"
	// labelOwner is "host:pid" of the test process that made the object,
	// so that a run removes the leftovers of dead runs only.
	labelOwner = "io.apiary.multihost.owner"

	nodePort = 4242
	dataDir  = "/data"
	svcName  = "web"
)

// Deadlines of the waits. Failure detection takes ~3 s (heartbeat 1 s ×
// grace 3), plus 5 s of takeover grace after a leader change; the rest is
// slack for a loaded CI machine.
const (
	formTimeout     = 90 * time.Second
	convergeTimeout = 60 * time.Second
)

// hostNode is one "host": a container (re-created on restart) with its
// data volume and fixed address.
type hostNode struct {
	name       string // hostname, and suffix of the container and volume names
	manager    bool
	ip         string
	volume     string
	container  string   // the current container's ID
	containers []string // every container it had, oldest first
	nodeID     string   // the cluster's ID for it, once seen
	stopped    bool     // container stopped
	detached   bool     // disconnected from the network
}

func (n *hostNode) addr() string { return fmt.Sprintf("%s:%d", n.ip, nodePort) }

type cluster struct {
	t       *testing.T
	docker  *client.Client
	run     string
	labels  map[string]string
	image   string // image ID
	tag     string
	netID   string
	netName string
	nodes   []*hostNode
}

func TestMultiHostDocker(t *testing.T) {
	dc := dockerClient(t)
	ctx := t.Context()
	start := time.Now()

	removeLeftovers(ctx, t, dc)
	ver, err := dc.ServerVersion(ctx)
	if err != nil {
		t.Fatalf("docker version: %v", err)
	}
	c := &cluster{t: t, docker: dc, run: randomID()}
	c.labels = map[string]string{labelRun: c.run, labelOwner: owner()}
	c.tag = "apiary-multihost:test-" + c.run
	t.Cleanup(c.cleanup)

	step(t, "build static binaries and the FROM scratch image", func() {
		bins := buildBinaries(t, ver.Arch)
		c.buildImage(ctx, bins)
	})
	step(t, "create the private network and the data volumes", func() {
		c.createNetwork(ctx)
		for i := 1; i <= 3; i++ {
			c.addNode(ctx, fmt.Sprintf("mgr-%d", i), true, 10+i)
		}
		for i := 1; i <= 2; i++ {
			c.addNode(ctx, fmt.Sprintf("wkr-%d", i), false, 20+i)
		}
	})
	m1, m2, m3, w1, w2 := c.nodes[0], c.nodes[1], c.nodes[2], c.nodes[3], c.nodes[4]

	step(t, "form the cluster: init, 2 managers join, 2 workers join", func() {
		c.startNode(ctx, m1, "init", "--listen-addr", "0.0.0.0:"+strconv.Itoa(nodePort), "--advertise-addr", m1.addr())
		var mtok, wtok string
		c.waitUntil(ctx, "the first manager answers on its control socket", formTimeout, func(ctx context.Context) (string, error) {
			var err error
			if mtok, err = c.token(ctx, m1, "manager"); err != nil {
				return "", err
			}
			wtok, err = c.token(ctx, m1, "worker")
			return "", err
		})
		// Managers join one at a time: each waits until it is a reachable
		// member before the next asks.
		for i, m := range []*hostNode{m2, m3} {
			c.startNode(ctx, m, "join", "--listen-addr", "0.0.0.0:"+strconv.Itoa(nodePort), "--advertise-addr", m.addr(), "--token", mtok, m1.addr())
			c.waitUntil(ctx, m.name+" is a reachable manager", formTimeout, func(ctx context.Context) (string, error) {
				st, err := c.snapshot(ctx, m1, false)
				if err != nil {
					return "", err
				}
				return st.describeNodes(), st.checkNodes(c.nodes[:2+i], nil)
			})
		}
		for _, w := range []*hostNode{w1, w2} {
			c.startNode(ctx, w, "join", "--listen-addr", "0.0.0.0:"+strconv.Itoa(nodePort), "--advertise-addr", w.addr(), "--token", wtok, m1.addr(), m2.addr(), m3.addr())
		}
		c.waitUntil(ctx, "5 nodes ready, 3 managers reachable, one leader", formTimeout, func(ctx context.Context) (string, error) {
			st, err := c.snapshot(ctx, m1, false)
			if err != nil {
				return "", err
			}
			return st.describeNodes(), st.checkNodes(c.nodes, nil)
		})
	})

	step(t, "service create web --replicas 6 (the webapp, as processes in the node containers)", func() {
		c.ctlOK(ctx, c.via(), "service", "create", "--name", svcName, "--replicas", "6", "--", "/webapp")
		c.waitConverged(ctx, 6, nil)
		// Managers read the tasks' output from the nodes that run them, at
		// their advertised addresses.
		c.waitUntil(ctx, "service logs web shows every task starting on its node", convergeTimeout, func(ctx context.Context) (string, error) {
			st, err := c.snapshot(ctx, c.via(), true)
			if err != nil {
				return "", err
			}
			out, err := c.ctl(ctx, c.via(), "service", "logs", svcName)
			if err != nil {
				return "", err
			}
			return st.checkLogs(out)
		})
	})

	// Fault 1: the worker running the most tasks stops.
	victim := w1
	if st, err := c.snapshot(ctx, c.via(), true); err == nil && st.onNode(w2.nodeID) > st.onNode(w1.nodeID) {
		victim = w2
	}
	step(t, "fault 1: stop worker container "+victim.name, func() {
		timeout := 2
		if err := dc.ContainerStop(ctx, victim.container, container.StopOptions{Timeout: &timeout}); err != nil {
			t.Fatalf("stop %s: %v", victim.name, err)
		}
		victim.stopped = true
		c.waitConverged(ctx, 6, []*hostNode{victim})
	})

	// Fault 2: a manager is cut off the network; the two others keep the
	// quorum. Which one: a follower by default, the leader with
	// APIARY_MULTIHOST_CUT=leader (which also fails the dispatcher over).
	cutRole := os.Getenv("APIARY_MULTIHOST_CUT")
	if cutRole == "" {
		cutRole = "leader"
	}
	if cutRole != "leader" && cutRole != "follower" {
		t.Fatalf("APIARY_MULTIHOST_CUT=%q: want leader or follower", cutRole)
	}
	var cut *hostNode
	step(t, "fault 2: disconnect a manager (the "+cutRole+") from the network", func() {
		st, err := c.snapshot(ctx, c.via(), false)
		if err != nil {
			t.Fatalf("node ls: %v", err)
		}
		leader := c.byID(st.leader())
		if leader == nil {
			t.Fatalf("no leader among the managers: %s", st.describeNodes())
		}
		cut = leader
		if cutRole == "follower" {
			for _, m := range []*hostNode{m3, m2, m1} {
				if m != leader {
					cut = m
					break
				}
			}
		}
		t.Logf("    leader is %s; disconnecting %s", leader.name, cut.name)
		if err := dc.NetworkDisconnect(ctx, c.netID, cut.container, true); err != nil {
			t.Fatalf("disconnect %s: %v", cut.name, err)
		}
		cut.detached = true
		c.waitConverged(ctx, 6, []*hostNode{victim, cut})
	})
	step(t, "service scale web=8 with one manager cut off", func() {
		c.ctlOK(ctx, c.via(), "service", "scale", svcName+"=8")
		c.waitConverged(ctx, 8, []*hostNode{victim, cut})
	})
	step(t, "reconnect "+cut.name+" at its address: reachable again, sees 8 replicas", func() {
		err := dc.NetworkConnect(ctx, c.netID, cut.container, &network.EndpointSettings{
			IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: cut.ip},
		})
		if err != nil {
			t.Fatalf("reconnect %s: %v", cut.name, err)
		}
		cut.detached = false
		c.waitConverged(ctx, 8, []*hostNode{victim})
		c.waitUntil(ctx, cut.name+" lists web with 8 replicas, all running", convergeTimeout, func(ctx context.Context) (string, error) {
			var svcs []api.Service
			if err := c.ctlJSON(ctx, cut, &svcs, "service", "ls", "--format", "json"); err != nil {
				return "", err
			}
			for _, s := range svcs {
				if s.Spec.Name != svcName {
					continue
				}
				got := fmt.Sprintf("%s on %s: mode %+v, status %+v", svcName, cut.name, s.Spec.Mode.Replicated, s.ServiceStatus)
				if s.Spec.Mode.Replicated == nil || s.Spec.Mode.Replicated.Replicas != 8 {
					return got, errors.New("not 8 replicas")
				}
				if s.ServiceStatus == nil || s.ServiceStatus.RunningTasks != 8 {
					return got, errors.New("not 8 running")
				}
				return got, nil
			}
			return fmt.Sprint(svcs), fmt.Errorf("%s does not list %s", cut.name, svcName)
		})
		// Its own view of the nodes agrees with the others'.
		c.waitUntil(ctx, cut.name+" sees the same nodes", convergeTimeout, func(ctx context.Context) (string, error) {
			st, err := c.snapshot(ctx, cut, false)
			if err != nil {
				return "", err
			}
			return st.describeNodes(), st.checkNodes(c.nodes, []*hostNode{victim})
		})
	})

	step(t, "restart worker "+victim.name+" (apiaryd run on its data volume, same address)", func() {
		c.startNode(ctx, victim, "run")
		victim.stopped = false
		// Under its old node ID (checkNodes knows each host's ID from its
		// first sighting, and wants exactly the five nodes).
		c.waitConverged(ctx, 8, nil)
	})
	t.Logf("all steps converged in %.1fs", time.Since(start).Seconds())
}

// step runs f and logs how long it took.
func step(t *testing.T, what string, f func()) {
	t.Helper()
	t.Logf("--- %s", what)
	begin := time.Now()
	f()
	t.Logf("    done in %.2fs", time.Since(begin).Seconds())
}

// ---- Docker engine --------------------------------------------------------

// dockerClient connects to the engine (DOCKER_HOST or the default socket).
// Outside CI an unreachable engine skips the test; under CI=true it fails.
func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		_, err = c.Ping(ctx)
		cancel()
		if err != nil {
			c.Close()
			err = fmt.Errorf("ping %s: %w", c.DaemonHost(), err)
		}
	}
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("Docker engine unreachable, and CI=true requires it: %v", err)
		}
		t.Skipf("Docker engine unreachable (start dockerd or set DOCKER_HOST to run this test): %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func randomID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func owner() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}

// abandoned says whether an object labelled with its owner ("host:pid")
// belongs to no live run: its process is gone (or is this one, whose
// runs are sequential), or, from another host, it is over an hour old.
func abandoned(labels map[string]string, created time.Time) bool {
	host, pidStr, _ := strings.Cut(labels[labelOwner], ":")
	me, _ := os.Hostname()
	pid, err := strconv.Atoi(pidStr)
	if host != me || err != nil {
		return !created.IsZero() && time.Since(created) > time.Hour
	}
	if pid == os.Getpid() {
		return true
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	return p.Signal(syscall.Signal(0)) != nil
}

// removeLeftovers removes what earlier runs that did not finish left
// behind, found by label.
func removeLeftovers(ctx context.Context, t *testing.T, dc *client.Client) {
	f := filters.NewArgs(filters.Arg("label", labelRun))
	cs, err := dc.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatalf("list leftover containers: %v", err)
	}
	for _, c := range cs {
		if abandoned(c.Labels, time.Unix(c.Created, 0)) {
			t.Logf("removing leftover container %s", strings.Join(c.Names, ","))
			if err := dc.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
				t.Logf("remove leftover container %s: %v", c.ID[:12], err)
			}
		}
	}
	nets, err := dc.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatalf("list leftover networks: %v", err)
	}
	for _, n := range nets {
		if abandoned(n.Labels, n.Created) {
			t.Logf("removing leftover network %s", n.Name)
			if err := dc.NetworkRemove(ctx, n.ID); err != nil && !client.IsErrNotFound(err) {
				t.Logf("remove leftover network %s: %v", n.Name, err)
			}
		}
	}
	vols, err := dc.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatalf("list leftover volumes: %v", err)
	}
	for _, v := range vols.Volumes {
		created, _ := time.Parse(time.RFC3339, v.CreatedAt)
		if abandoned(v.Labels, created) {
			t.Logf("removing leftover volume %s", v.Name)
			if err := dc.VolumeRemove(ctx, v.Name, true); err != nil && !client.IsErrNotFound(err) {
				t.Logf("remove leftover volume %s: %v", v.Name, err)
			}
		}
	}
	imgs, err := dc.ImageList(ctx, image.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatalf("list leftover images: %v", err)
	}
	for _, im := range imgs {
		if abandoned(im.Labels, time.Unix(im.Created, 0)) {
			t.Logf("removing leftover image %s %v", im.ID, im.RepoTags)
			if _, err := dc.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !client.IsErrNotFound(err) {
				t.Logf("remove leftover image %s: %v", im.ID, err)
			}
		}
	}
}

// buildBinaries builds apiaryd, apiaryctl and webapp statically for the
// engine's architecture and returns their paths by name.
func buildBinaries(t *testing.T, arch string) map[string]string {
	t.Helper()
	if arch == "" {
		arch = "amd64"
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", dir+string(filepath.Separator),
		"github.com/apiary-io/apiary/examples/apiaryd",
		"github.com/apiary-io/apiary/examples/apiaryctl",
		"github.com/apiary-io/apiary/examples/webapp/cmd/webapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bins := map[string]string{}
	for _, b := range []string{"apiaryd", "apiaryctl", "webapp"} {
		bins[b] = filepath.Join(dir, b)
	}
	return bins
}

// buildImage builds the node image FROM scratch through the API. The
// context holds the Dockerfile and a root file system tar, which ADD
// unpacks with its modes: the binaries, /data (the node's data dir, where
// the process executor keeps its tasks: a volume is mounted there), a
// world-writable /tmp, and an /etc/passwd for root (there is no shell:
// nothing in the image needs one).
func (c *cluster) buildImage(ctx context.Context, bins map[string]string) {
	t := c.t
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	epoch := time.Unix(0, 0)
	dirs := []struct {
		name string
		mode int64
	}{{"data/", 0o700}, {"tmp/", 0o1777}, {"etc/", 0o755}}
	for _, d := range dirs {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: epoch}))
	}
	addFile := func(name string, mode int64, data []byte) {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch}))
		_, err := tw.Write(data)
		must(t, err)
	}
	addFile("etc/passwd", 0o644, []byte("root:x:0:0:root:/:/apiaryd\n"))
	addFile("etc/group", 0o644, []byte("root:x:0:\n"))
	names := make([]string, 0, len(bins))
	for n := range bins {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(bins[n])
		must(t, err)
		addFile(n, 0o755, b)
	}
	must(t, tw.Close())

	var bctx bytes.Buffer
	tw = tar.NewWriter(&bctx)
	dockerfile := []byte("FROM scratch\nADD rootfs.tar /\n")
	for _, f := range []struct {
		name string
		data []byte
	}{{"Dockerfile", dockerfile}, {"rootfs.tar", rootfs.Bytes()}} {
		must(t, tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch}))
		_, err := tw.Write(f.data)
		must(t, err)
	}
	must(t, tw.Close())

	resp, err := c.docker.ImageBuild(ctx, &bctx, build.ImageBuildOptions{
		Tags:        []string{c.tag},
		Labels:      c.labels,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		t.Fatalf("image build: %v", err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var progress strings.Builder
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
			Aux    struct {
				ID string `json:"ID"`
			} `json:"aux"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("image build: %v\n%s", err, progress.String())
		}
		progress.WriteString(m.Stream)
		if m.Error != "" {
			t.Fatalf("image build: %s\n%s", m.Error, progress.String())
		}
	}
	ins, err := c.docker.ImageInspect(ctx, c.tag)
	if err != nil {
		t.Fatalf("image build: inspect %s: %v\n%s", c.tag, err, progress.String())
	}
	c.image = ins.ID
	t.Logf("    image %s (%s, %.1f MB)", c.tag, c.image[:19], float64(ins.Size)/1e6)
}

// createNetwork creates the private (internal) bridge network on a
// random /24 of 10.128.0.0/9 that no other network uses.
func (c *cluster) createNetwork(ctx context.Context) {
	c.netName = "apiary-mh-" + c.run
	var errs []error
	for range 20 {
		prefix := fmt.Sprintf("10.%d.%d", 128+mrand.IntN(127), mrand.IntN(256))
		resp, err := c.docker.NetworkCreate(ctx, c.netName, network.CreateOptions{
			Driver:   "bridge",
			Internal: true,
			Labels:   c.labels,
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{
				Subnet:  prefix + ".0/24",
				Gateway: prefix + ".1",
			}}},
		})
		if err == nil {
			c.netID = resp.ID
			c.t.Logf("    network %s on %s.0/24", c.netName, prefix)
			return
		}
		errs = append(errs, err)
		if !strings.Contains(err.Error(), "overlap") {
			break
		}
	}
	c.t.Fatalf("network create: %v", errors.Join(errs...))
}

// addNode registers a host with its data volume and address (host part
// hostPart of the network's /24).
func (c *cluster) addNode(ctx context.Context, name string, manager bool, hostPart int) {
	ins, err := c.docker.NetworkInspect(ctx, c.netID, network.InspectOptions{})
	if err != nil || len(ins.IPAM.Config) == 0 {
		c.t.Fatalf("network inspect: %v", err)
	}
	prefix := strings.TrimSuffix(ins.IPAM.Config[0].Subnet, ".0/24")
	n := &hostNode{name: name, manager: manager, ip: fmt.Sprintf("%s.%d", prefix, hostPart), volume: "apiary-mh-" + c.run + "-" + name}
	if _, err := c.docker.VolumeCreate(ctx, volume.CreateOptions{Name: n.volume, Labels: c.labels}); err != nil {
		c.t.Fatalf("volume create %s: %v", n.volume, err)
	}
	c.nodes = append(c.nodes, n)
}

// startNode creates and starts a new container for n running
// `apiaryd SUBCOMMAND --data-dir /data ARGS...`, on n's volume and address.
func (c *cluster) startNode(ctx context.Context, n *hostNode, sub string, args ...string) {
	t := c.t
	cmd := append([]string{"/apiaryd", sub, "--data-dir", dataDir}, args...)
	if sub != "run" {
		cmd = append(cmd, "--executor", "process")
	}
	name := "apiary-mh-" + c.run + "-" + n.name
	if k := len(n.containers); k > 0 {
		name += "-" + strconv.Itoa(k)
	}
	resp, err := c.docker.ContainerCreate(ctx,
		&container.Config{Image: c.image, Hostname: n.name, Cmd: cmd, Labels: c.labels},
		&container.HostConfig{
			NetworkMode: container.NetworkMode(c.netName),
			Mounts:      []mount.Mount{{Type: mount.TypeVolume, Source: n.volume, Target: dataDir}},
		},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			c.netName: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: n.ip}},
		}},
		nil, name)
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	n.container = resp.ID
	n.containers = append(n.containers, resp.ID)
	if err := c.docker.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", name, err)
	}
	t.Logf("    %s: %s at %s: %s", n.name, name, n.ip, strings.Join(redact(cmd), " "))
}

// redact hides the join token in logged commands.
func redact(cmd []string) []string {
	out := slices.Clone(cmd)
	for i := range out {
		if i > 0 && out[i-1] == "--token" {
			out[i] = out[i][:min(len(out[i]), 12)] + "…"
		}
	}
	return out
}

// cleanup dumps every container's log when the test failed, then removes
// everything the run made.
func (c *cluster) cleanup() {
	if os.Getenv("APIARY_MULTIHOST_KEEP") == "1" && c.t.Failed() {
		c.t.Logf("APIARY_MULTIHOST_KEEP=1: leaving run %s's containers, network, volumes and image (label %s=%s)", c.run, labelRun, c.run)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", labelRun+"="+c.run))
	cs, err := c.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		c.t.Errorf("cleanup: list containers: %v", err)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Created < cs[j].Created })
	if c.t.Failed() {
		for _, ct := range cs {
			c.t.Logf("==== logs of %s (%s) ====\n%s", strings.Join(ct.Names, ","), ct.Status, c.logs(ctx, ct.ID))
		}
	}
	for _, ct := range cs {
		if err := c.docker.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
			c.t.Errorf("cleanup: remove container %s: %v", ct.Names, err)
		}
	}
	if c.netID != "" {
		if err := c.docker.NetworkRemove(ctx, c.netID); err != nil && !client.IsErrNotFound(err) {
			c.t.Errorf("cleanup: remove network %s: %v", c.netName, err)
		}
	}
	for _, n := range c.nodes {
		if err := c.docker.VolumeRemove(ctx, n.volume, true); err != nil && !client.IsErrNotFound(err) {
			c.t.Errorf("cleanup: remove volume %s: %v", n.volume, err)
		}
	}
	imgs, err := c.docker.ImageList(ctx, image.ListOptions{All: true, Filters: f})
	if err != nil {
		c.t.Errorf("cleanup: list images: %v", err)
	}
	for _, im := range imgs {
		if _, err := c.docker.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !client.IsErrNotFound(err) {
			c.t.Errorf("cleanup: remove image %s: %v", im.ID, err)
		}
	}
}

// logs returns the last lines of a container's output.
func (c *cluster) logs(ctx context.Context, id string) string {
	rc, err := c.docker.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Tail: "300"})
	if err != nil {
		return "(logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		fmt.Fprintf(&buf, "(logs: %v)", err)
	}
	return buf.String()
}

// ---- apiaryctl inside a manager container --------------------------------

// exec runs cmd in n's container and returns its output and exit code.
func (c *cluster) exec(ctx context.Context, n *hostNode, cmd ...string) (stdout, stderr string, code int, err error) {
	ex, err := c.docker.ContainerExecCreate(ctx, n.container, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", "", -1, fmt.Errorf("exec in %s: %w", n.name, err)
	}
	att, err := c.docker.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", "", -1, fmt.Errorf("exec in %s: attach: %w", n.name, err)
	}
	defer att.Close()
	var o, e bytes.Buffer
	done := make(chan error, 1)
	go func() { _, err := stdcopy.StdCopy(&o, &e, att.Reader); done <- err }()
	select {
	case err = <-done:
	case <-ctx.Done():
		att.Close()
		<-done
		return o.String(), e.String(), -1, fmt.Errorf("exec in %s: %w", n.name, ctx.Err())
	}
	if err != nil {
		return o.String(), e.String(), -1, fmt.Errorf("exec in %s: read: %w", n.name, err)
	}
	// The stream ends as the process exits; its exit code follows shortly.
	for {
		ins, err := c.docker.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return o.String(), e.String(), -1, fmt.Errorf("exec in %s: inspect: %w", n.name, err)
		}
		if !ins.Running {
			return o.String(), e.String(), ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return o.String(), e.String(), -1, fmt.Errorf("exec in %s: %w", n.name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ctl runs apiaryctl against n's control socket; a non-zero exit is an
// error carrying its stderr.
func (c *cluster) ctl(ctx context.Context, n *hostNode, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := append([]string{"/apiaryctl", "--socket", dataDir + "/control.sock", "--timeout", "20s"}, args...)
	out, errOut, code, err := c.exec(ctx, n, cmd...)
	if err != nil {
		return out, err
	}
	if code != 0 {
		return out, fmt.Errorf("apiaryctl %s on %s: exit %d: %s", strings.Join(args, " "), n.name, code, strings.TrimSpace(errOut))
	}
	return out, nil
}

func (c *cluster) ctlOK(ctx context.Context, n *hostNode, args ...string) string {
	out, err := c.ctl(ctx, n, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *cluster) ctlJSON(ctx context.Context, n *hostNode, v any, args ...string) error {
	out, err := c.ctl(ctx, n, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("apiaryctl %s on %s: %w in %q", strings.Join(args, " "), n.name, err, out)
	}
	return nil
}

func (c *cluster) token(ctx context.Context, n *hostNode, role string) (string, error) {
	out, err := c.ctl(ctx, n, "swarm", "join-token", role, "-q")
	tok := strings.TrimSpace(out)
	if err == nil && tok == "" {
		err = errors.New("empty join token")
	}
	return tok, err
}

// via is the manager to drive the cluster through: the first one running
// and on the network.
func (c *cluster) via() *hostNode {
	for _, n := range c.nodes {
		if n.manager && !n.stopped && !n.detached {
			return n
		}
	}
	c.t.Fatal("no manager to drive the cluster through")
	return nil
}

func (c *cluster) byHostname(h string) *hostNode {
	for _, n := range c.nodes {
		if n.name == h {
			return n
		}
	}
	return nil
}

func (c *cluster) byID(id string) *hostNode {
	for _, n := range c.nodes {
		if n.nodeID == id && id != "" {
			return n
		}
	}
	return nil
}

// ---- cluster state --------------------------------------------------------

type state struct {
	c     *cluster
	nodes []api.Node
	tasks []api.Task
}

// snapshot lists the nodes (and the service's tasks) through n, and
// learns the node IDs of the hosts by hostname.
func (c *cluster) snapshot(ctx context.Context, n *hostNode, tasks bool) (*state, error) {
	st := &state{c: c}
	if err := c.ctlJSON(ctx, n, &st.nodes, "node", "ls", "--format", "json"); err != nil {
		return nil, err
	}
	for _, nd := range st.nodes {
		if nd.Description == nil {
			continue
		}
		if h := c.byHostname(nd.Description.Hostname); h != nil && h.nodeID == "" {
			h.nodeID = nd.ID
		}
	}
	if tasks {
		if err := c.ctlJSON(ctx, n, &st.tasks, "service", "ps", svcName, "--format", "json"); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (st *state) leader() string {
	for _, n := range st.nodes {
		if n.ManagerStatus != nil && n.ManagerStatus.Leader {
			return n.ID
		}
	}
	return ""
}

func (st *state) host(n api.Node) string {
	if n.Description != nil {
		return n.Description.Hostname
	}
	return n.ID
}

func (st *state) describeNodes() string {
	var parts []string
	for _, n := range st.nodes {
		s := st.host(n) + "=" + string(n.Status.State)
		if ms := n.ManagerStatus; ms != nil {
			s += "/" + string(ms.Reachability)
			if ms.Leader {
				s += "/leader"
			}
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	return "nodes: " + strings.Join(parts, " ")
}

// checkNodes says whether the nodes listed are exactly hosts, those in
// down down and the others ready, every manager among the others reachable
// (the down ones unreachable), and one leader among the ready managers.
func (st *state) checkNodes(hosts, down []*hostNode) error {
	if len(st.nodes) != len(hosts) {
		return fmt.Errorf("%d nodes listed, want %d", len(st.nodes), len(hosts))
	}
	leaders := 0
	for _, n := range st.nodes {
		h := st.c.byHostname(st.host(n))
		if h == nil || !slices.Contains(hosts, h) {
			return fmt.Errorf("unexpected node %s (%s)", n.ID, st.host(n))
		}
		if h.nodeID != n.ID {
			return fmt.Errorf("%s is node %s, was %s", h.name, n.ID, h.nodeID)
		}
		isDown := slices.Contains(down, h)
		want := api.NodeStateReady
		if isDown {
			want = api.NodeStateDown
		}
		if n.Status.State != want {
			return fmt.Errorf("%s is %s, want %s", h.name, n.Status.State, want)
		}
		if h.manager != (n.ManagerStatus != nil) {
			return fmt.Errorf("%s: manager status %+v", h.name, n.ManagerStatus)
		}
		if ms := n.ManagerStatus; ms != nil {
			wantR := api.ReachabilityReachable
			if isDown {
				wantR = api.ReachabilityUnreachable
			}
			if ms.Reachability != wantR {
				return fmt.Errorf("manager %s is %s, want %s", h.name, ms.Reachability, wantR)
			}
			if ms.Addr != h.addr() {
				return fmt.Errorf("manager %s has address %s, want %s", h.name, ms.Addr, h.addr())
			}
			if ms.Leader {
				leaders++
				if isDown {
					return fmt.Errorf("the leader is %s, which is cut off", h.name)
				}
			}
		}
	}
	if leaders != 1 {
		return fmt.Errorf("%d leaders", leaders)
	}
	return nil
}

func (st *state) onNode(id string) int {
	k := 0
	for _, t := range st.tasks {
		if t.NodeID == id && t.DesiredState == api.TaskStateRunning && t.Status.State == api.TaskStateRunning {
			k++
		}
	}
	return k
}

func (st *state) describeTasks() string {
	per := map[string]int{}
	states := map[string]int{}
	for _, t := range st.tasks {
		if t.DesiredState != api.TaskStateRunning {
			continue
		}
		states[t.Status.State.String()]++
		if t.Status.State == api.TaskStateRunning {
			h := t.NodeID
			if n := st.c.byID(t.NodeID); n != nil {
				h = n.name
			}
			per[h]++
		}
	}
	return fmt.Sprintf("tasks wanted running: %v; running per node: %v", states, per)
}

// checkTasks says whether exactly want tasks are wanted running, all of
// them run, in slots 1..want, and none on the hosts in down.
func (st *state) checkTasks(want int, down []*hostNode) error {
	slots := map[uint64]bool{}
	for _, t := range st.tasks {
		if t.DesiredState != api.TaskStateRunning {
			continue
		}
		if t.Status.State != api.TaskStateRunning {
			return fmt.Errorf("task %s is %s", t.Name, t.Status.State)
		}
		for _, d := range down {
			if t.NodeID == d.nodeID {
				return fmt.Errorf("task %s runs on %s, which is down", t.Name, d.name)
			}
		}
		if slots[t.Slot] || t.Slot < 1 || t.Slot > uint64(want) {
			return fmt.Errorf("task %s: slot %d again or out of 1..%d", t.Name, t.Slot, want)
		}
		slots[t.Slot] = true
	}
	if len(slots) != want {
		return fmt.Errorf("%d tasks running, want %d", len(slots), want)
	}
	return nil
}

// checkLogs says whether the output of `service logs` (lines "TASK |
// LINE", TASK being service.slot.shortID) holds, for every running task, the webapp's greeting naming the
// task's node.
func (st *state) checkLogs(out string) (string, error) {
	greetings := map[string]string{} // task name -> its line
	for _, l := range strings.Split(out, "\n") {
		name, line, ok := strings.Cut(l, " | ")
		if ok && strings.Contains(line, " listening on http://") {
			greetings[name] = line
		}
	}
	seen := fmt.Sprintf("%d greetings in %d bytes of logs", len(greetings), len(out))
	for _, t := range st.tasks {
		if t.DesiredState != api.TaskStateRunning || t.Status.State != api.TaskStateRunning {
			continue
		}
		// Docker's naming: service.slot.shortID.
		var line string
		ok := false
		for name, l := range greetings {
			if id, cut := strings.CutPrefix(name, t.Name+"."); cut && id != "" && strings.HasPrefix(t.ID, id) {
				line, ok = l, true
			}
		}
		if !ok {
			return seen, fmt.Errorf("no greeting from task %s in the logs", t.Name)
		}
		if want := "on node " + t.NodeID[:min(12, len(t.NodeID))]; !strings.Contains(line, want) {
			return seen, fmt.Errorf("task %s: greeting %q does not say %q", t.Name, line, want)
		}
	}
	return seen, nil
}

// checkProcesses says whether every node container that runs and is on
// the network runs exactly as many webapp processes as the cluster says
// it runs tasks: replaced tasks of a node that returned are gone.
func (c *cluster) checkProcesses(ctx context.Context, st *state) (string, error) {
	var parts []string
	var errs []error
	for _, n := range c.nodes {
		if n.stopped || n.detached {
			continue
		}
		top, err := c.docker.ContainerTop(ctx, n.container, nil)
		if err != nil {
			return "", fmt.Errorf("top %s: %w", n.name, err)
		}
		col := slices.Index(top.Titles, "CMD")
		if col < 0 {
			col = slices.Index(top.Titles, "COMMAND")
		}
		if col < 0 {
			return "", fmt.Errorf("top %s: no command column in %v", n.name, top.Titles)
		}
		procs := 0
		for _, p := range top.Processes {
			if col < len(p) && strings.HasPrefix(p[col], "/webapp") {
				procs++
			}
		}
		want := st.onNode(n.nodeID)
		parts = append(parts, fmt.Sprintf("%s:%d/%d", n.name, procs, want))
		if procs != want {
			errs = append(errs, fmt.Errorf("%s runs %d webapp processes, the cluster says %d tasks", n.name, procs, want))
		}
	}
	return "processes/tasks: " + strings.Join(parts, " "), errors.Join(errs...)
}

// waitConverged waits until, seen from a manager on the network, the nodes
// are ready but those in down (down, and unreachable for managers), one
// manager leads, the service runs want tasks none of which is on a down
// node, and the containers run exactly the processes of those tasks.
func (c *cluster) waitConverged(ctx context.Context, want int, down []*hostNode) {
	var names []string
	for _, d := range down {
		names = append(names, d.name)
	}
	what := fmt.Sprintf("%d tasks running, nodes ready except %v", want, names)
	c.waitUntil(ctx, what, convergeTimeout, func(ctx context.Context) (string, error) {
		st, err := c.snapshot(ctx, c.via(), true)
		if err != nil {
			return "", err
		}
		desc := st.describeNodes() + "; " + st.describeTasks()
		if err := st.checkNodes(c.nodes, down); err != nil {
			return desc, err
		}
		if err := st.checkTasks(want, down); err != nil {
			return desc, err
		}
		procs, err := c.checkProcesses(ctx, st)
		return desc + "; " + procs, err
	})
}

// waitUntil polls cond until it returns nil, failing the test with cond's
// last answer after timeout. cond returns a description of what it saw.
func (c *cluster) waitUntil(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (string, error)) {
	c.t.Helper()
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var seen string
	var err error
	for attempt := 1; ; attempt++ {
		s, e := cond(ctx)
		if e == nil {
			c.t.Logf("    %s after %.2fs (%s)", what, time.Since(begin).Seconds(), s)
			return
		}
		// An attempt cut short by the deadline says less than the one
		// before it.
		if ctx.Err() == nil || err == nil {
			seen, err = s, e
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("waited %s (%d attempts) for %s: %v\nlast seen: %s", timeout, attempt, what, err, seen)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
