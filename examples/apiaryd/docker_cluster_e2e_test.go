//go:build unix

package main_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue 17's first "Must show": the real docker CLI drives a cluster of
// three apiaryd processes (process executors; a manager and two workers
// on 127.0.0.1-3, the workers joined with the token `docker swarm
// join-token -q worker` printed) over the manager's docker.sock and over
// TCP with mutual TLS (a bundle of `apiaryctl swarm ca --client-bundle`):
// info, node ls / inspect self / update --availability drain, service
// create (with and without -d), ls, ps, inspect, scale, update --image,
// rollback, a failing update rolled back by itself and one that pauses,
// logs, rm, and stack deploy / services / rm of a compose file with a
// network, a secret and a config. Programs are named as process images
// (process.apiary.invalid/PATH), which the CLI's compose loader accepts.
// Every command's exit code and output are checked.
func TestBinariesDockerCLICluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	docker := dockerCLI(t)
	e := &e2e{t: t, bin: build(t), root: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(e.stopAll)
	progs := newProgramDir(t, filepath.Join(e.bin, "webapp"), "webapp", "webapp-v2")
	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	port := freePort(t, hosts, 33000+time.Now().Nanosecond()%1000)
	addr := func(i int) string { return net.JoinHostPort(hosts[i], fmt.Sprint(port)) }
	tlsAddr := net.JoinHostPort(hosts[0], fmt.Sprint(freePort(t, hosts[:1], port+1)))

	e.start("m1", addr(0), "init", "--listen-addr", addr(0), "--docker-api", "--docker-api-addr", tlsAddr)
	e.waitFor("the manager to lead", 30*time.Second, func() (bool, string) {
		_, err := e.ctl("m1", "swarm", "join-token", "worker", "-q")
		return err == nil, fmt.Sprint(err)
	})
	unix := newDockerClient(t, docker, "unix", "DOCKER_HOST=unix://"+filepath.Join(e.procs["m1"].dir, "docker.sock"))

	// The worker token the docker CLI prints joins apiaryd workers.
	token := strings.TrimSpace(unix.ok("swarm", "join-token", "-q", "worker"))
	if !regexp.MustCompile(`^APTKN-1-[a-z0-9]+-[a-z0-9]+$`).MatchString(token) {
		t.Fatalf("docker swarm join-token -q worker = %q, want an APTKN-1 token alone", token)
	}
	if want, err := e.ctl("m1", "swarm", "join-token", "worker", "-q"); err != nil || strings.TrimSpace(want) != token {
		t.Errorf("docker's worker token %q, apiaryctl's %q (%v)", token, want, err)
	}
	e.start("w1", addr(1), "join", "--listen-addr", addr(1), "--token", token, addr(0))
	e.start("w2", addr(2), "join", "--listen-addr", addr(2), "--token", token, addr(0))
	e.waitReady("m1", 3)

	bundle := filepath.Join(t.TempDir(), "bundle")
	if out, err := e.ctl("m1", "swarm", "ca", "--client-bundle", bundle); err != nil {
		t.Fatalf("swarm ca --client-bundle: %v\n%s", err, out)
	}
	tcp := newDockerClient(t, docker, "tls", "DOCKER_HOST=tcp://"+tlsAddr, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+bundle)

	l := &dockerLeg{e: e, progs: progs, fail: falseProgram(t)}
	l.d, l.prefix, l.drain = unix, "u", "w1"
	l.run()
	l.d, l.prefix, l.drain, l.detachedUpdate = tcp, "t", "w2", true
	l.run()
}

// dockerLeg is the sequence of commands through one transport.
type dockerLeg struct {
	e     *e2e
	d     *dockerClient
	progs *programDir
	fail  string // a program that exits 1 at once
	// prefix names the leg's objects, apart from the other leg's.
	prefix string
	// drain is the worker the leg drains.
	drain string
	// detachedUpdate: update --image with -d, the status seen updating
	// and then completed; otherwise the CLI follows it to the end.
	detachedUpdate bool
}

// psTask is a line of docker service ps.
type psTask struct {
	Name, Node, Desired, Current, Image string
}

// ps lists a service's tasks of desired state running.
func (l *dockerLeg) ps(svc string) []psTask {
	l.e.t.Helper()
	out := l.d.ok("service", "ps", svc, "--filter", "desired-state=running", "--no-trunc",
		"--format", "{{.Name}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}|{{.Image}}")
	var ts []psTask
	for _, ln := range lines(out) {
		f := strings.Split(ln, "|")
		if len(f) != 5 {
			l.e.t.Fatalf("[%s] service ps line %q", l.d.name, ln)
		}
		ts = append(ts, psTask{f[0], f[1], f[2], f[3], f[4]})
	}
	return ts
}

// waitRunning waits until n tasks of svc run, all of image, none on the
// nodes of avoid; it returns them.
func (l *dockerLeg) waitRunning(svc string, n int, image string, avoid ...string) []psTask {
	l.e.t.Helper()
	var ts []psTask
	l.e.waitFor(fmt.Sprintf("[%s] %d tasks of %s running %s", l.d.name, n, svc, image), 60*time.Second, func() (bool, string) {
		ts = l.ps(svc)
		if len(ts) != n {
			return false, fmt.Sprintf("%d tasks: %+v", len(ts), ts)
		}
		for _, task := range ts {
			if !strings.HasPrefix(task.Current, "Running") || task.Image != image || slices.Contains(avoid, task.Node) ||
				!slices.Contains([]string{"m1", "w1", "w2"}, task.Node) {
				return false, fmt.Sprintf("%+v", ts)
			}
		}
		return true, ""
	})
	return ts
}

// dockerServiceJSON is what docker service inspect shows that the test reads.
type dockerServiceJSON struct {
	ID      string
	Version struct{ Index uint64 }
	Spec    struct {
		Name         string
		TaskTemplate struct {
			ContainerSpec struct {
				Image string
				Env   []string
			}
		}
		Mode         struct{ Replicated *struct{ Replicas uint64 } }
		UpdateConfig *struct {
			Monitor       time.Duration
			FailureAction string
		}
	}
	PreviousSpec *struct {
		TaskTemplate struct{ ContainerSpec struct{ Image string } }
	}
	UpdateStatus *struct{ State, Message string }
}

func (l *dockerLeg) inspect(svc string) dockerServiceJSON {
	l.e.t.Helper()
	var s []dockerServiceJSON
	l.d.json(&s, "service", "inspect", svc)
	if len(s) != 1 {
		l.e.t.Fatalf("[%s] service inspect %s: %d services", l.d.name, svc, len(s))
	}
	return s[0]
}

// waitUpdateState waits until svc's UpdateStatus is state.
func (l *dockerLeg) waitUpdateState(svc, state string) dockerServiceJSON {
	l.e.t.Helper()
	var s dockerServiceJSON
	l.e.waitFor(fmt.Sprintf("[%s] %s's update status %s", l.d.name, svc, state), 60*time.Second, func() (bool, string) {
		s = l.inspect(svc)
		return s.UpdateStatus != nil && s.UpdateStatus.State == state, fmt.Sprintf("%+v", s.UpdateStatus)
	})
	return s
}

// converged checks the output of a command the CLI followed until the
// service converged.
func (l *dockerLeg) converged(r dockerResult, svc string) {
	l.e.t.Helper()
	if r.code != 0 || !strings.Contains(r.stdout, "overall progress:") ||
		!regexp.MustCompile(`verify: Service \S+ converged`).MatchString(r.stdout) {
		l.e.t.Errorf("[%s] the CLI did not follow %s to convergence: %s", l.d.name, svc, r)
	}
}

func (l *dockerLeg) run() {
	t, d := l.e.t, l.d
	v1, v2 := l.progs.image("webapp"), l.progs.image("webapp-v2")
	v1t, v2t, failt := v1+":latest", v2+":latest", l.fail+":latest"

	// docker info: the Swarm section of the manager serving the API.
	var info struct {
		Swarm struct {
			NodeID, NodeAddr, LocalNodeState string
			ControlAvailable                 bool
			Nodes, Managers                  int
			Cluster                          *struct{ ID string }
		}
	}
	d.json(&info, "info", "--format", "{{json .}}")
	if s := info.Swarm; s.NodeID == "" || s.LocalNodeState != "active" || !s.ControlAvailable || s.Nodes != 3 || s.Managers != 1 ||
		s.Cluster == nil || s.Cluster.ID == "" || !strings.HasPrefix(s.NodeAddr, "127.0.0.1") {
		t.Errorf("[%s] docker info Swarm = %+v", d.name, s)
	}

	// node ls: three nodes, ready and active, m1 the leader (marked *:
	// the node serving the API).
	l.e.waitFor("["+d.name+"] docker node ls", 30*time.Second, func() (bool, string) {
		out := d.ok("node", "ls", "--format", "{{.Self}} {{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}")
		got := lines(out)
		slices.Sort(got)
		want := []string{"false w1 Ready Active", "false w2 Ready Active", "true m1 Ready Active Leader"}
		return slices.Equal(got, want), fmt.Sprintf("%q, want %q", got, want)
	})
	var self []struct {
		ID            string
		Description   struct{ Hostname string }
		Spec          struct{ Role, Availability string }
		Status        struct{ State, Addr string }
		ManagerStatus *struct {
			Leader bool
			Addr   string
		}
	}
	d.json(&self, "node", "inspect", "self")
	if len(self) != 1 || self[0].ID != info.Swarm.NodeID || self[0].Description.Hostname != "m1" || self[0].Spec.Role != "manager" ||
		self[0].Status.State != "ready" || self[0].ManagerStatus == nil || !self[0].ManagerStatus.Leader {
		t.Errorf("[%s] docker node inspect self = %+v", d.name, self)
	}

	// service create -d prints the ID alone and returns.
	web, api := l.prefix+"-web", l.prefix+"-api"
	r := d.run("service", "create", "-d", "--name", web, "--replicas", "3", "--update-monitor", "1s", "--env", "APP_VERSION=v1", v1)
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || !regexp.MustCompile(`^[a-z0-9]{25}$`).MatchString(id) {
		t.Fatalf("[%s] service create -d: want the ID alone: %s", d.name, r)
	}
	// Without -d the CLI follows the tasks until they converged.
	r = d.run("service", "create", "--name", api, "--update-monitor", "1s", v1)
	l.converged(r, api)
	if ls := lines(r.stdout); len(ls) == 0 || !regexp.MustCompile(`^[a-z0-9]{25}$`).MatchString(ls[0]) {
		t.Errorf("[%s] service create: the ID first: %s", d.name, r)
	}
	l.waitRunning(web, 3, v1t)
	l.e.waitFor("["+d.name+"] docker service ls", 30*time.Second, func() (bool, string) {
		got := lines(d.ok("service", "ls", "--filter", "name="+l.prefix+"-", "--format", "{{.ID}} {{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}"))
		want := []string{id[:12] + " " + web + " replicated 3/3 " + v1t}
		if len(got) != 2 || got[1] != want[0] || !strings.HasSuffix(got[0], " "+api+" replicated 1/1 "+v1t) {
			return false, fmt.Sprintf("%q, want %s 1/1 and %q", got, api, want)
		}
		return true, ""
	})
	s := l.inspect(web)
	if s.ID != id || s.Spec.Name != web || s.Spec.TaskTemplate.ContainerSpec.Image != v1t || s.Spec.Mode.Replicated == nil ||
		s.Spec.Mode.Replicated.Replicas != 3 || s.Spec.UpdateConfig == nil || s.Spec.UpdateConfig.Monitor != time.Second ||
		!slices.Contains(s.Spec.TaskTemplate.ContainerSpec.Env, "APP_VERSION=v1") {
		t.Errorf("[%s] docker service inspect %s = %+v", d.name, web, s)
	}

	// scale: the CLI follows it.
	r = d.run("service", "scale", web+"=4")
	l.converged(r, web)
	if !strings.Contains(r.stdout, web+" scaled to 4") {
		t.Errorf("[%s] service scale: %s", d.name, r)
	}
	l.waitRunning(web, 4, v1t)

	// update --image: another program, the tasks replaced one at a time.
	upd := []string{"service", "update", "--image", v2, "--env-add", "APP_VERSION=v2"}
	if l.detachedUpdate {
		// The update is at least three delays long: it is still updating
		// when -d returns.
		r = d.run(append(upd, "-d", "--update-delay", "2s", web)...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != web {
			t.Errorf("[%s] service update -d: %s", d.name, r)
		}
		if s := l.inspect(web); s.UpdateStatus == nil || s.UpdateStatus.State != "updating" {
			t.Errorf("[%s] update status after update -d: %+v, want updating", d.name, s.UpdateStatus)
		}
	} else {
		r = d.run(append(upd, web)...)
		l.converged(r, web)
	}
	s = l.waitUpdateState(web, "completed")
	if s.Spec.TaskTemplate.ContainerSpec.Image != v2t || s.PreviousSpec == nil || s.PreviousSpec.TaskTemplate.ContainerSpec.Image != v1t {
		t.Errorf("[%s] after update --image: %+v", d.name, s)
	}
	l.waitRunning(web, 4, v2t)

	// logs: each running task's lines, under the task's name and node.
	l.e.waitFor("["+d.name+"] docker service logs of every task", 30*time.Second, func() (bool, string) {
		r := d.run("service", "logs", "--no-trunc", web)
		if r.code != 0 {
			return false, r.String()
		}
		var why []string
		for _, task := range l.ps(web) {
			slot := strings.TrimPrefix(task.Name, web+".")
			re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(task.Name) + `\.[a-z0-9]{25}@` + task.Node + `\s+\| ` +
				regexp.QuoteMeta(web+"."+slot) + ` v2 on node \S+ listening on http://127\.0\.0\.\d+:\d+$`)
			if !re.MatchString(r.stdout) {
				why = append(why, task.Name+"@"+task.Node)
			}
		}
		return len(why) == 0, fmt.Sprintf("no v2 line of %v in:\n%s", why, r.stdout)
	})

	// rollback: back to the previous spec, followed by the CLI.
	r = d.run("service", "rollback", web)
	l.converged(r, web)
	if !strings.Contains(r.stdout, "rollback: manually requested rollback") {
		t.Errorf("[%s] service rollback: %s", d.name, r)
	}
	l.waitUpdateState(web, "rollback_completed")
	l.waitRunning(web, 4, v1t)

	// A failing update with --update-failure-action rollback: the
	// orchestrator rolls back by itself, the CLI shows it and follows the
	// rollback to convergence (Docker's CLI exits 0 then).
	r = d.run("service", "update", "--image", l.fail, "--update-failure-action", "rollback", web)
	l.converged(r, web)
	if !strings.Contains(r.stdout, "rollback: update rolled back due to failure or early termination of task") {
		t.Errorf("[%s] failing update with rollback: %s", d.name, r)
	}
	s = l.waitUpdateState(web, "rollback_completed")
	if s.Spec.TaskTemplate.ContainerSpec.Image != v1t || s.Spec.UpdateConfig == nil || s.Spec.UpdateConfig.FailureAction != "pause" {
		t.Errorf("[%s] after the failing update rolled back: %+v, want %s and failure action pause", d.name, s, v1t)
	}
	l.waitRunning(web, 4, v1t)

	// A failing update with the default failure action pauses: the CLI
	// exits 1 naming the pause; a rollback recovers.
	r = d.run("service", "update", "--image", l.fail, web)
	if r.code != 1 || !strings.Contains(r.stderr, "service update paused: update paused due to failure or early termination of task") {
		t.Errorf("[%s] failing update pausing: %s", d.name, r)
	}
	if s := l.inspect(web); s.UpdateStatus == nil || s.UpdateStatus.State != "paused" || s.Spec.TaskTemplate.ContainerSpec.Image != failt {
		t.Errorf("[%s] after the paused update: %+v", d.name, s)
	}
	l.converged(d.run("service", "rollback", web), web)
	l.waitUpdateState(web, "rollback_completed")
	l.waitRunning(web, 4, v1t)

	if !l.detachedUpdate {
		l.rollbackPauses(v1, v1t, failt)
	}

	// drain: the node's tasks move to the other two; active again after.
	if out := strings.TrimSpace(d.ok("node", "update", "--availability", "drain", l.drain)); out != l.drain {
		t.Errorf("[%s] node update --availability drain: %q", d.name, out)
	}
	if out := strings.TrimSpace(d.ok("node", "inspect", l.drain, "--format", "{{.Spec.Availability}}")); out != "drain" {
		t.Errorf("[%s] %s availability %q, want drain", d.name, l.drain, out)
	}
	l.waitRunning(web, 4, v1t, l.drain)
	l.waitRunning(api, 1, v1t, l.drain)
	d.ok("node", "update", "--availability", "active", l.drain)

	// rm.
	if out := strings.TrimSpace(d.ok("service", "rm", web, api)); out != web+"\n"+api {
		t.Errorf("[%s] service rm: %q", d.name, out)
	}
	if out := d.ok("service", "ls", "-q", "--filter", "name="+l.prefix+"-"); strings.TrimSpace(out) != "" {
		t.Errorf("[%s] services after rm: %q", d.name, out)
	}
	l.stack()
}

// rollbackPauses: a rollback to a spec whose tasks fail pauses (the
// rollback config's failure action, pause by default): the CLI exits 1
// naming it and the status reads rollback_paused.
func (l *dockerLeg) rollbackPauses(v1, v1t, failt string) {
	t, d := l.e.t, l.d
	svc := l.prefix + "-back"
	d.ok("service", "create", "-d", "--name", svc, "--update-monitor", "1s", "--rollback-monitor", "1s", l.fail)
	l.converged(d.run("service", "update", "--image", v1, svc), svc)
	l.waitRunning(svc, 1, v1t)
	r := d.run("service", "rollback", svc)
	if r.code != 1 || !regexp.MustCompile(`service rollback paused: (update|rollback) paused due to failure or early termination of task`).MatchString(r.stderr) {
		t.Errorf("[%s] a rollback to failing tasks: %s", d.name, r)
	}
	if s := l.inspect(svc); s.UpdateStatus == nil || s.UpdateStatus.State != "rollback_paused" || s.Spec.TaskTemplate.ContainerSpec.Image != failt {
		t.Errorf("[%s] after the paused rollback: %+v", d.name, s)
	}
	if out := strings.TrimSpace(d.ok("service", "rm", svc)); out != svc {
		t.Errorf("[%s] service rm %s: %q", d.name, svc, out)
	}
}

// stack: docker stack deploy of a two-service compose file with a
// network, a secret and a config; services and rm.
func (l *dockerLeg) stack() {
	t, d := l.e.t, l.d
	name := l.prefix + "stack"
	dir := t.TempDir()
	for f, data := range map[string]string{"pw.txt": "s3cret", "app.conf": "k=v\n",
		"compose.yml": fmt.Sprintf(stackCompose, l.progs.image("webapp"))} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := d.run("stack", "deploy", "-c", filepath.Join(dir, "compose.yml"), name)
	for _, want := range []string{"Creating network " + name + "_back", "Creating secret " + name + "_pw",
		"Creating config " + name + "_app", "Creating service " + name + "_web", "Creating service " + name + "_api"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("[%s] stack deploy lacks %q: %s", d.name, want, r)
		}
	}
	l.e.waitFor("["+d.name+"] docker stack services", 60*time.Second, func() (bool, string) {
		got := d.ok("stack", "services", name, "--format", "{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}")
		img := l.progs.image("webapp") + ":latest"
		want := name + "_api replicated 1/1 " + img + "\n" + name + "_web replicated 2/2 " + img
		return strings.TrimSpace(got) == want, fmt.Sprintf("%q, want %q", got, want)
	})
	if out := d.ok("stack", "ls", "--format", "{{.Name}} {{.Services}}"); !slices.Contains(lines(out), name+" 2") {
		t.Errorf("[%s] stack ls: %q, want %s 2", d.name, out, name)
	}
	var web []struct {
		Spec struct {
			Labels       map[string]string
			TaskTemplate struct {
				ContainerSpec struct {
					Secrets []struct{ SecretName string }
					Configs []struct{ ConfigName string }
				}
				Networks []struct{ Target string }
			}
		}
	}
	d.json(&web, "service", "inspect", name+"_web")
	if len(web) != 1 || web[0].Spec.Labels["com.docker.stack.namespace"] != name || web[0].Spec.Labels["tier"] != "front" ||
		len(web[0].Spec.TaskTemplate.ContainerSpec.Secrets) != 1 || web[0].Spec.TaskTemplate.ContainerSpec.Secrets[0].SecretName != name+"_pw" ||
		len(web[0].Spec.TaskTemplate.ContainerSpec.Configs) != 1 || web[0].Spec.TaskTemplate.ContainerSpec.Configs[0].ConfigName != name+"_app" ||
		len(web[0].Spec.TaskTemplate.Networks) != 1 {
		t.Errorf("[%s] %s_web = %+v", d.name, name, web)
	}

	r = d.run("stack", "rm", name)
	for _, want := range []string{"Removing service " + name + "_web", "Removing service " + name + "_api",
		"Removing secret " + name + "_pw", "Removing config " + name + "_app", "Removing network " + name + "_back"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("[%s] stack rm lacks %q: %s", d.name, want, r)
		}
	}
	l.e.waitFor("["+d.name+"] the stack's objects to go", 30*time.Second, func() (bool, string) {
		left := ""
		for _, kind := range []string{"service", "network", "secret", "config"} {
			if out := d.ok(kind, "ls", "--format", "{{.Name}}"); strings.Contains(out, name+"_") {
				left += kind + ": " + out
			}
		}
		return left == "", left
	})
	if out := d.ok("stack", "ls", "--format", "{{.Name}}"); slices.Contains(lines(out), name) {
		t.Errorf("[%s] stack ls after rm: %q", d.name, out)
	}
}
