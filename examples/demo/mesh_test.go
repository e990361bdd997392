package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiary-io/apiary/examples/webapp"
)

// fakeNode stands in for a node's published port: it answers / as the
// replicas that answer picks, request after request.
func fakeNode(t *testing.T, answer func(n int64) string) string {
	t.Helper()
	var count atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, answer(count.Add(1)))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// The ingress check passes only once every node answers from exactly the
// running replicas: a node whose table still lacks app.2 (its first six
// answers) is waited for, and the line names the replicas and the nodes.
func TestIngressCheckWaitsForEveryReplica(t *testing.T) {
	both := func(n int64) string { return fmt.Sprintf("hello from app.%d v1 on node abc", n%2+1) }
	lagging := func(n int64) string {
		if n <= 6 {
			return "hello from app.1 v1 on node abc"
		}
		return both(n)
	}
	targets := []meshTarget{{name: "manager", addr: fakeNode(t, both)}, {name: "worker-1", addr: fakeNode(t, lagging)}}
	line, lagged, err := checkIngress(context.Background(), 30*time.Second, 30*time.Second, targets, []string{"worker-2"}, 8080, 80, []string{"app.1", "app.2"}, "v1")
	if err != nil || lagged {
		t.Fatalf("lagged %v, err %v", lagged, err)
	}
	want := ":8080 on every live node (manager worker-1; worker-2 down): answered by app.1 app.2 ("
	if !strings.HasPrefix(line, want) {
		t.Fatalf("line %q, want it to start with %q", line, want)
	}
}

// A node answering from the old version, or from a replica that should be
// gone, fails the check at its deadline, naming the node and why.
func TestIngressCheckFailsOnStaleAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, answer, want string
	}{
		{"old version", "hello from app.1 v1 on node abc", "answered from app.1 at v1, want v2"},
		{"removed replica", "hello from app.3 v2 on node abc", "answered from app.3, not one of app.1"},
		{"not the app", "404 page not found", `answered "404 page not found"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets := []meshTarget{{name: "worker-3", addr: fakeNode(t, func(int64) string { return tc.answer })}}
			_, _, err := checkIngress(context.Background(), 300*time.Millisecond, time.Minute, targets, nil, 8080, 80, []string{"app.1"}, "v2")
			if err == nil || !strings.Contains(err.Error(), "worker-3: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming worker-3 and %q", err, tc.want)
			}
		})
	}
}

// A node that reaches only some replicas, rightly, is waited for until
// converge only: the check then passes, naming the node and what it
// reached, and says it lagged.
func TestIngressCheckNamesALaggingNode(t *testing.T) {
	both := func(n int64) string { return fmt.Sprintf("hello from app.%d v1 on node abc", n%2+1) }
	behind := func(int64) string { return "hello from app.2 v1 on node abc" }
	targets := []meshTarget{{name: "manager", addr: fakeNode(t, both)}, {name: "worker-1", addr: fakeNode(t, behind)}}
	line, lagged, err := checkIngress(context.Background(), 30*time.Second, 200*time.Millisecond, targets, nil, 8080, 80, []string{"app.1", "app.2"}, "v1")
	if err != nil || !lagged {
		t.Fatalf("lagged %v, err %v", lagged, err)
	}
	for _, want := range []string{":8080 on every node (manager worker-1): answered, but not by every replica everywhere after ", "s: app.1 app.2 on manager; app.2 on worker-1\n", "worker-1's endpoint table"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "manager's endpoint table") {
		t.Errorf("line %q names the manager, which reached both", line)
	}
}

// The db check wants db's answer through app's /call, reached at db's VIP.
func TestDBCheckWantsDBAtItsVIP(t *testing.T) {
	const vip = "127.100.0.9:80"
	call := func(called string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/call" || r.URL.Query().Get("name") != "db" || r.URL.Query().Get("port") != "80" {
				http.Error(w, "unexpected "+r.URL.String(), http.StatusBadRequest)
				return
			}
			w.Header().Set(webapp.CalledAddrHeader, called)
			fmt.Fprintln(w, "hello from db.1 v1 on node abc")
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	good := []meshTarget{{name: "manager", addr: call(vip)}, {name: "worker-1", addr: call(vip)}}
	line, err := checkDB(context.Background(), 30*time.Second, good, 8080, 80, vip)
	if err != nil {
		t.Fatal(err)
	}
	if want := "db.1 answered, at db's VIP " + vip; !strings.Contains(line, want) {
		t.Fatalf("line %q lacks %q", line, want)
	}
	bad := []meshTarget{{name: "manager", addr: call(vip)}, {name: "worker-1", addr: call("127.0.240.3:34567")}}
	_, err = checkDB(context.Background(), 300*time.Millisecond, bad, 8080, 80, vip)
	if err == nil || !strings.Contains(err.Error(), "worker-1: app reached db at 127.0.240.3:34567, not at its VIP") {
		t.Fatalf("err %v, want one naming worker-1 and the address it reached", err)
	}
}

// A block where something holds a mesh port (another demo) is passed over.
func TestPickHostsSkipsABusyBlock(t *testing.T) {
	first, err := pickHosts(2)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", netip.AddrPortFrom(first[0], gossipPort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	next, err := pickHosts(2)
	if err != nil {
		t.Fatal(err)
	}
	if next[0].As4()[2] == first[0].As4()[2] {
		t.Fatalf("picked %v again while %v is held", next, l.Addr())
	}
	if len(next) != 2 || next[1].As4()[3] != 2 {
		t.Fatalf("picked %v, want 127.0.B.1 and 127.0.B.2", next)
	}
}

func TestSortReplicasBySlot(t *testing.T) {
	rs := []string{"app.10", "app.2", "app.1"}
	sortReplicas(rs)
	if got := strings.Join(rs, " "); got != "app.1 app.2 app.10" {
		t.Fatalf("sorted %q", got)
	}
}
