package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apiary-io/apiary/examples/webapp"
)

// The routing mesh's checks, after every step: the published port answers
// on every live node, from the service's running replicas, and app reaches
// db by name (through its node's DNS server and db's virtual IP).

const (
	// probesPerReplica is how many requests per running replica each node's
	// published port gets in one round: the balancer takes turns, so twice
	// the replicas reach each of them.
	probesPerReplica = 2
	// probeTimeout bounds one request of a check: the balancer tries
	// another backend after a second (balancer.DefaultConnectTimeout).
	probeTimeout = 5 * time.Second
	// maxBody bounds what the demo reads of an answer: the web app's are
	// one line.
	maxBody = 1 << 16
	// pollEvery spaces the rounds of a check that has not passed yet.
	pollEvery = 100 * time.Millisecond
	// preferredTarget is the port app and db listen on in the story ("-p
	// 8080:80"); fallbackTarget is where the search for another starts
	// when this process may not bind 80 (not root, or another server holds
	// it): the services' virtual IPs listen on their target ports.
	preferredTarget = 80
	fallbackTarget  = 8000
)

// probeClient opens a connection per request, so the balancer picks a
// backend for each (a kept-alive connection stays with one replica).
var probeClient = &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}

var helloRE = regexp.MustCompile(`hello from (\S+) (\S+) on node (\S+)`)

// hello is a web app's answer to /.
type hello struct {
	replica, version, node string
}

func parseHello(body string) (hello, bool) {
	m := helloRE.FindStringSubmatch(body)
	if m == nil {
		return hello{}, false
	}
	return hello{replica: m[1], version: m[2], node: m[3]}, true
}

// targetPort is preferredTarget when it is free on every host, else a free
// port from fallbackTarget up other than avoid (the published port).
func targetPort(hosts []netip.Addr, avoid int) (int, error) {
	if p, err := freeOnAll(hosts, preferredTarget); err == nil && p == preferredTarget {
		return p, nil
	}
	for start := fallbackTarget; ; {
		p, err := freeOnAll(hosts, start)
		if err != nil || p != avoid {
			return p, err
		}
		start = p + 1
	}
}

// fetch GETs url and returns the body of a 200 answer, with the address
// /call reached (webapp.CalledAddrHeader) when it says.
func fetch(ctx context.Context, url string) (body, called string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", "", err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), resp.Header.Get(webapp.CalledAddrHeader), nil
}

// ingressRound asks addr (a node's published port) probesPerReplica times
// per wanted replica and returns who answered, or why the round failed: a
// request failed, or the answer came from another version or from a
// replica that is not among the wanted (one that should be gone).
func ingressRound(ctx context.Context, addr string, want []string, version string) (seen []string, why string) {
	got := map[string]bool{}
	for range probesPerReplica * len(want) {
		body, _, err := fetch(ctx, "http://"+addr+"/")
		if err != nil {
			return nil, err.Error()
		}
		h, parsed := parseHello(body)
		if !parsed {
			return nil, fmt.Sprintf("%s answered %q", addr, strings.TrimSpace(body))
		}
		if h.version != version {
			return nil, fmt.Sprintf("%s answered from %s at %s, want %s", addr, h.replica, h.version, version)
		}
		if !slices.Contains(want, h.replica) {
			return nil, fmt.Sprintf("%s answered from %s, not one of %s", addr, h.replica, strings.Join(want, " "))
		}
		got[h.replica] = true
	}
	for r := range got {
		seen = append(seen, r)
	}
	sortReplicas(seen)
	return seen, ""
}

// service is the service of replicas ("app" of "app.1").
func service(replicas []string) string {
	if len(replicas) == 0 {
		return ""
	}
	return replicas[0][:strings.LastIndexByte(replicas[0], '.')]
}

// tables says, for a failed check, which of the service's tasks each
// node's endpoint table holds, as its DNS server answers from it
// (_<target>._tcp.tasks.<service>: a record per task, named
// <service>.<slot>.<task ID>, with the port its node gave it).
func tables(ctx context.Context, targets []meshTarget, svc string, target int) string {
	var lines []string
	for _, t := range targets {
		lines = append(lines, fmt.Sprintf("  %s's endpoint table (its DNS server %s): %s", t.name, t.dns, table(ctx, t.dns, svc, target)))
	}
	return strings.Join(lines, "\n")
}

func table(ctx context.Context, server, svc string, target int) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
	defer cancel()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
	_, srvs, err := res.LookupSRV(ctx, strconv.Itoa(target), "tcp", "tasks."+svc+".")
	if err != nil {
		return err.Error()
	}
	var tasks []string
	for _, s := range srvs {
		labels := strings.SplitN(s.Target, ".", 4) // service, slot, task ID, domain
		if len(labels) < 3 {
			tasks = append(tasks, s.Target)
			continue
		}
		tasks = append(tasks, fmt.Sprintf("%s.%s (task %s, port %d)", labels[0], labels[1], labels[2], s.Port))
	}
	sort.Strings(tasks)
	return strings.Join(tasks, ", ")
}

// sortReplicas orders "app.10" after "app.9".
func sortReplicas(rs []string) {
	slot := func(r string) int {
		n, _ := strconv.Atoi(r[strings.LastIndexByte(r, '.')+1:])
		return n
	}
	sort.Slice(rs, func(i, j int) bool {
		if a, b := slot(rs[i]), slot(rs[j]); a != b {
			return a < b
		}
		return rs[i] < rs[j]
	})
}

// dbRound asks addr (a node's published port) to have app call db by name,
// and returns the db replica that answered and the address app reached.
func dbRound(ctx context.Context, addr string, dbPort int) (replica, called string, err error) {
	body, called, err := fetch(ctx, fmt.Sprintf("http://%s/call?name=db&port=%d&path=/", addr, dbPort))
	if err != nil {
		return "", "", err
	}
	h, ok := parseHello(body)
	if !ok || !strings.HasPrefix(h.replica, "db.") {
		return "", "", fmt.Errorf("%s: app's call of db answered %q", addr, strings.TrimSpace(body))
	}
	return h.replica, called, nil
}

// meshTarget is one live node's published port.
type meshTarget struct {
	name string
	addr string // host:published port
	dns  string // its DNS server, HOST:PORT
}

// waitFor retries round until it passes or timeout ends, and says how long
// it took or why it never passed.
func waitFor(ctx context.Context, timeout time.Duration, what string, round func(context.Context) (bool, string)) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		ok, why := round(ctx)
		if ok {
			return time.Since(start), nil
		}
		// A round the deadline cut short says only that: the one
		// before says why the check did not pass.
		if ctx.Err() == nil || last == "" {
			last = why
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s: not after %v: %s", what, timeout, last)
		case <-time.After(pollEvery):
		}
	}
}

// checkIngress waits until every target's published port answers from
// exactly the wanted replicas at version, and says so in a line. A node
// that still reaches only some of them after converge is waited for
// no longer, as long as whatever answers is right: the line then names it
// and what its endpoint table holds, and lagged is true.
func checkIngress(ctx context.Context, timeout, converge time.Duration, targets []meshTarget, down []string, port, target int, want []string, version string) (line string, lagged bool, err error) {
	start := time.Now()
	seen := make([][]string, len(targets))
	round := func(all bool) func(context.Context) (bool, string) {
		return func(ctx context.Context) (bool, string) {
			for i, t := range targets {
				s, why := ingressRound(ctx, t.addr, want, version)
				if why != "" {
					return false, t.name + ": " + why
				}
				if all && !slices.Equal(s, want) {
					return false, fmt.Sprintf("%s: %s answered from %s, want %s", t.name, t.addr, strings.Join(s, " "), strings.Join(want, " "))
				}
				seen[i] = s
			}
			return true, ""
		}
	}
	what := fmt.Sprintf("published port %d on every node", port)
	head := fmt.Sprintf(":%d on %s: answered", port, nodeList(targets, down))
	converge = min(converge, timeout)
	if _, err = waitFor(ctx, converge, what, round(true)); err == nil {
		return head + fmt.Sprintf(" by %s (%s)", strings.Join(want, " "), seconds(time.Since(start))), false, nil
	}
	if converge < timeout {
		_, err = waitFor(ctx, timeout-converge, what, round(false))
	}
	if err != nil {
		return "", false, fmt.Errorf("%w\n%s", err, tables(ctx, targets, service(want), target))
	}
	var lag []meshTarget
	groups := map[string][]string{} // replicas seen → the nodes that saw them
	var order []string
	for i, t := range targets {
		if !slices.Equal(seen[i], want) {
			lag = append(lag, t)
		}
		k := strings.Join(seen[i], " ")
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t.name)
	}
	if len(lag) == 0 {
		// Converged just after converge.
		return head + fmt.Sprintf(" by %s (%s)", strings.Join(want, " "), seconds(time.Since(start))), false, nil
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, k+" on "+strings.Join(groups[k], " "))
	}
	return fmt.Sprintf("%s, but not by every replica everywhere after %s: %s\n%s\n%s", head, seconds(time.Since(start)), strings.Join(parts, "; "),
		"  (the mesh is behind there: gossip has not brought every replica to its endpoint table yet; gossip's push/pull repairs it within a minute)",
		tables(ctx, lag, service(want), target)), true, nil
}

// checkDB waits until app, asked through every target's published port,
// reaches db by name at db's VIP (HOST:PORT), and says so in a line.
func checkDB(ctx context.Context, timeout time.Duration, targets []meshTarget, published, dbPort int, vip string) (string, error) {
	replicas := map[string]bool{}
	took, err := waitFor(ctx, timeout, "app calling db by name", func(ctx context.Context) (bool, string) {
		clear(replicas)
		for _, t := range targets {
			r, called, err := dbRound(ctx, t.addr, dbPort)
			if err != nil {
				return false, t.name + ": " + err.Error()
			}
			if called != vip {
				return false, fmt.Sprintf("%s: app reached db at %s, not at its VIP %s", t.name, called, vip)
			}
			replicas[r] = true
		}
		return true, ""
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("app → db by name, asked through :%d on each: %s answered, at db's VIP %s (%s)",
		published, joinKeys(replicas), vip, seconds(took)), nil
}

// nodeList names the nodes checked, and those left out (down).
func nodeList(targets []meshTarget, down []string) string {
	var names []string
	for _, t := range targets {
		names = append(names, t.name)
	}
	if len(down) == 0 {
		return "every node (" + strings.Join(names, " ") + ")"
	}
	return "every live node (" + strings.Join(names, " ") + "; " + strings.Join(down, " ") + " down)"
}

// seconds is how long a check waited for the mesh.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func joinKeys(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}
