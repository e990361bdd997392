//go:build linux

package main_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The routing mesh end to end (issue 15): three apiaryd processes on
// 127.0.0.1-3 with their defaults (host data path: gossip, DNS and
// balancer on each node's own address), the example web app published on
// 8080 with three replicas. The port answers on every node, every replica
// answers over 300 requests, a replica killed costs at most the requests
// of a short window (reported), none once the tables converged, and a
// second service reaches web by name through its node's DNS server.
func TestBinariesRoutingMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	e := &e2e{t: t, bin: build(t), root: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(e.stopAll)
	port := 27000 + os.Getpid()%1000
	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	addr := func(i int) string { return net.JoinHostPort(hosts[i], strconv.Itoa(port)) }
	e.start("m1", addr(0), "init", "--listen-addr", addr(0))
	wt := e.workerToken("m1")
	for i, name := range []string{"w1", "w2"} {
		e.start(name, addr(i+1), "join", "--listen-addr", addr(i+1), "--token", wt, addr(0))
	}
	e.waitReady("m1", 3)

	published := freePort(t, hosts, 8080)
	webapp := filepath.Join(e.bin, "webapp")
	if _, err := e.ctl("m1", "service", "create", "--name", "web", "--replicas", "3", "--publish", fmt.Sprintf("%d:80", published), "--", webapp); err != nil {
		t.Fatal(err)
	}
	e.waitFor("3 running replicas", 60*time.Second, func() (bool, string) {
		n, err := e.running("m1", "web")
		return n == 3, fmt.Sprint(n, err)
	})

	// Every node's ingress reaches every replica: 100 requests on each
	// node's published port, all answered, each replica among them. The
	// tables converge by gossip within a second or two of the tasks
	// running; push/pull (30 s) must not be what brings them.
	ingress := func(i int) string {
		return fmt.Sprintf("http://%s/", net.JoinHostPort(hosts[i], strconv.Itoa(published)))
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	e.waitFor("every node's ingress reaching all three replicas", 15*time.Second, func() (bool, string) {
		for i := range hosts {
			seen := map[string]int{}
			for range 100 {
				body, err := get(client, ingress(i))
				if err != nil {
					return false, fmt.Sprintf("node %d: %v", i+1, err)
				}
				seen[who(body)]++
			}
			if len(seen) != 3 {
				return false, fmt.Sprintf("node %d's port answered by %v", i+1, seen)
			}
		}
		return true, ""
	})

	// Kill one replica while clients keep asking every node. The killed
	// process refuses connections at once; the balancer retries another
	// backend, so what can fail is a request in flight on it, until every
	// node's table drops it (its node sees it exit, and gossip spreads it).
	victim := taskProcess(t, webapp, "web", "1")
	var failures struct {
		sync.Mutex
		at []time.Time
	}
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				if _, err := get(client, ingress(i)); err != nil {
					failures.Lock()
					failures.at = append(failures.at, time.Now())
					failures.Unlock()
				}
			}
		}()
	}
	killedAt := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The restart policy starts a replacement; once it runs and the
	// tables hold it, the service is whole again.
	e.waitFor("a replacement for the killed replica", 60*time.Second, func() (bool, string) {
		n, err := e.running("m1", "web")
		return n == 3, fmt.Sprint(n, err)
	})
	e.waitFor("every node's ingress reaching the three replicas again", 15*time.Second, func() (bool, string) {
		for i := range hosts {
			seen := map[string]bool{}
			for range 30 {
				if body, err := get(client, ingress(i)); err == nil {
					seen[who(body)] = true
				}
			}
			if len(seen) != 3 {
				return false, fmt.Sprintf("node %d's port answered by %v", i+1, seen)
			}
		}
		return true, ""
	})
	failures.Lock()
	before := len(failures.at)
	window := time.Duration(0)
	if before > 0 {
		window = failures.at[before-1].Sub(killedAt)
	}
	failures.Unlock()
	// Converged: nothing fails from here on.
	base := sent.Load()
	for sent.Load() < base+300 {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	failures.Lock()
	after := len(failures.at) - before
	failures.Unlock()
	t.Logf("replica killed: %d of %d requests failed, the last %v after the kill; %d failed of the %d sent once converged",
		before, base, window, after, sent.Load()-base)
	if after != 0 {
		t.Fatalf("%d requests failed after the endpoint tables converged", after)
	}

	// A second service reaches web by name through its node's DNS server.
	if _, err := e.ctl("m1", "service", "create", "--name", "front", "--replicas", "1", "--publish", fmt.Sprintf("%d:80", freePort(t, hosts, published+1)), "--", webapp); err != nil {
		t.Fatal(err)
	}
	var frontPort int
	e.waitFor("front running with its published port", 60*time.Second, func() (bool, string) {
		n, err := e.running("m1", "front")
		if n != 1 {
			return false, fmt.Sprint(n, err)
		}
		var svcs []struct {
			Endpoint struct{ Ports []struct{ PublishedPort int } }
		}
		if err := e.ctlJSON("m1", &svcs, "service", "inspect", "front"); err != nil || len(svcs) != 1 || len(svcs[0].Endpoint.Ports) != 1 {
			return false, fmt.Sprint(svcs, err)
		}
		frontPort = svcs[0].Endpoint.Ports[0].PublishedPort
		return true, ""
	})
	e.waitFor("front calling web by name", 30*time.Second, func() (bool, string) {
		body, err := get(client, fmt.Sprintf("http://%s/call?name=web&port=80&path=/", net.JoinHostPort(hosts[2], strconv.Itoa(frontPort))))
		return err == nil && strings.Contains(body, "hello from web."), fmt.Sprint(body, err)
	})
}

var whoRE = regexp.MustCompile(`hello from (\S+)`)

// get fetches url and returns its body.
func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}

// who is the replica that answered ("web.2"), or the whole body when it
// names no one.
func who(body string) string {
	if m := whoRE.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return body
}

// freePort is want if it is free on every host, else a free port there.
func freePort(t *testing.T, hosts []string, want int) int {
	t.Helper()
	for p := want; p < want+200; p++ {
		free := true
		for _, h := range hosts {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(p)))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return p
		}
	}
	t.Fatalf("no free port from %d on %v", want, hosts)
	return 0
}

// taskProcess finds the pid of exe running as the given slot of service,
// from the environment the agent gave it.
func taskProcess(t *testing.T, exe, service, slot string) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if path, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || path != exe {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		vars := strings.Split(string(env), "\x00")
		has := func(kv string) bool {
			for _, v := range vars {
				if v == kv {
					return true
				}
			}
			return false
		}
		if has("APIARY_SERVICE_NAME="+service) && has("APIARY_TASK_SLOT="+slot) {
			return pid
		}
	}
	t.Fatalf("no process of %s for %s.%s", exe, service, slot)
	return 0
}
