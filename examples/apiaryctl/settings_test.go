package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// zoneA is a scheduler plugin of the program embedding the manager: it
// takes only nodes labelled zone=a.
type zoneA struct{}

func (zoneA) Name() string { return "ZoneA" }
func (zoneA) Filter(_ *scheduler.TaskInfo, n *scheduler.NodeInfo) *scheduler.Status {
	if n.Node.Spec.Labels["zone"] != "a" {
		return scheduler.Reject("not in zone a")
	}
	return nil
}

// start starts a real cluster (InitNode and JoinNode over mutual TLS on
// loopback, each node with its control socket) whose managers run zoneA.
func start(t *testing.T, workers int) *swarmtest.Cluster {
	return swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: workers, Configure: func(_ string, cfg *swarm.NodeConfig) {
		cfg.Manager.Scheduler.Register(zoneA{})
	}})
}

// ctl runs apiaryctl's command tree against a node's control socket, as
// the binary does.
func ctl(t *testing.T, dataDir string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootTo(&out)
	root.SetArgs(append([]string{"--socket", swarm.ControlSocket(dataDir), "--timeout", "20s"}, args...))
	err := root.Execute()
	return out.String(), err
}

func mustCtl(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	out, err := ctl(t, dataDir, args...)
	if err != nil {
		t.Fatalf("apiaryctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func clusterJSON(t *testing.T, dataDir string) api.Cluster {
	t.Helper()
	var c api.Cluster
	if err := json.Unmarshal([]byte(mustCtl(t, dataDir, "swarm", "inspect", "--format", "json")), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// `swarm update` changes the cluster-wide settings of a real node (a
// manager over mutual TLS, with its control socket) without a restart:
// only the flags given change; a bad value is refused naming its field and
// changes nothing; the worker already in session is told the new heartbeat
// period; a node joining afterwards gets a certificate of the new lifetime.
func TestSwarmUpdate(t *testing.T) {
	c := start(t, 1)
	m1, w1 := c.Members[0], c.Members[1]
	mdir := m1.DataDir
	before := clusterJSON(t, mdir)
	if before.Spec.Dispatcher.HeartbeatPeriod != 200*time.Millisecond || before.Spec.CAConfig.NodeCertExpiry != api.DefaultNodeCertExpiry {
		t.Fatalf("cluster spec from init: %+v", before.Spec)
	}

	if out := mustCtl(t, mdir, "swarm", "update", "--dispatcher-heartbeat", "700ms", "--task-history-limit", "3"); !strings.Contains(out, "Swarm updated.") {
		t.Errorf("swarm update printed %q", out)
	}
	spec := clusterJSON(t, mdir).Spec
	if spec.Dispatcher.HeartbeatPeriod != 700*time.Millisecond || spec.Orchestration.TaskHistoryRetentionLimit != 3 ||
		spec.CAConfig.NodeCertExpiry != api.DefaultNodeCertExpiry {
		t.Errorf("after update of heartbeat and history: %+v", spec)
	}
	mustCtl(t, mdir, "swarm", "update", "--cert-expiry", "3h")
	spec = clusterJSON(t, mdir).Spec
	if spec.Dispatcher.HeartbeatPeriod != 700*time.Millisecond || spec.Orchestration.TaskHistoryRetentionLimit != 3 ||
		spec.CAConfig.NodeCertExpiry != 3*time.Hour {
		t.Errorf("after update of the certificate lifetime alone: %+v", spec)
	}
	mustCtl(t, mdir, "swarm", "update", "--gossip-key-rotation", "2h")
	if spec = clusterJSON(t, mdir).Spec; spec.Gossip.KeyRotation != 2*time.Hour || spec.CAConfig.NodeCertExpiry != 3*time.Hour {
		t.Errorf("after update of the gossip key rotation alone: %+v", spec)
	}
	// swarm inspect shows the gossip keys' clocks, never their material.
	if keys := clusterJSON(t, mdir).GossipKeys.Keys; len(keys) != 1 || keys[0].Lamport != 1 || keys[0].Key != nil {
		t.Errorf("swarm inspect shows gossip keys %+v, want one of lamport 1 without its key", keys)
	}
	pretty := mustCtl(t, mdir, "swarm", "inspect", "--pretty")
	for _, want := range []string{"Dispatcher heartbeat: 700ms", "Certificate expiry:   3h0m0s", "Task history limit:   3", "Gossip key rotation:  2h0m0s", "Gossip keys:          1 (primary 1,"} {
		if !strings.Contains(pretty, want) {
			t.Errorf("swarm inspect --pretty does not say %q:\n%s", want, pretty)
		}
	}

	for _, tc := range []struct {
		args  []string
		field string
	}{
		{[]string{"--dispatcher-heartbeat", "10ms"}, "dispatcher.heartbeat_period"},
		{[]string{"--dispatcher-heartbeat", "2h"}, "dispatcher.heartbeat_period"},
		{[]string{"--cert-expiry", "30m"}, "ca_config.node_cert_expiry"},
		{[]string{"--gossip-key-rotation", "30s"}, "gossip.key_rotation"},
		{[]string{"--gossip-key-rotation", "800h"}, "gossip.key_rotation"},
		{[]string{"--task-history-limit", "-1"}, "orchestration.task_history_retention_limit"},
		{[]string{"--task-history-limit", "101", "--dispatcher-heartbeat", "1s"}, "orchestration.task_history_retention_limit"},
		{nil, "nothing to change"},
	} {
		_, err := ctl(t, mdir, append([]string{"swarm", "update"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("swarm update %v: err = %v, want one naming %s", tc.args, err, tc.field)
		}
	}
	if after := clusterJSON(t, mdir); after.Spec.Dispatcher.HeartbeatPeriod != 700*time.Millisecond ||
		after.Spec.Orchestration.TaskHistoryRetentionLimit != 3 || after.Spec.CAConfig.NodeCertExpiry != 3*time.Hour {
		t.Errorf("refused updates changed the spec: %+v", after.Spec)
	}

	// A node joining now is issued a certificate of the new lifetime.
	w2 := c.Join("worker-2", false)
	var nodes []api.Node
	if err := json.Unmarshal([]byte(mustCtl(t, mdir, "node", "inspect", "--format", "json", w2.Node.NodeID())), &nodes); err != nil || len(nodes) != 1 {
		t.Fatalf("node inspect: %v (%d nodes)", err, len(nodes))
	}
	if cert := nodes[0].Certificate; cert == nil {
		t.Error("the joined worker has no recorded certificate")
	} else if life := time.Until(cert.NotAfter); life < 3*time.Hour-5*time.Minute || life > 3*time.Hour {
		t.Errorf("the worker joined after --cert-expiry 3h holds a certificate valid for %v", life)
	}

	// The nodes' agents (the manager's too) are told each new period at
	// their next heartbeat, in the session they have.
	period := func(want time.Duration) {
		t.Helper()
		testutil.EventuallyWhy(t, 30*time.Second, "the agents to be told "+want.String(), func() (bool, string) {
			for _, m := range []*swarmtest.Member{m1, w1, w2} {
				if got := m.Node.HeartbeatPeriod(); got != want {
					return false, m.Name + " was told " + got.String()
				}
			}
			return true, ""
		})
	}
	period(700 * time.Millisecond)
	mustCtl(t, mdir, "swarm", "update", "--dispatcher-heartbeat", "300ms")
	period(300 * time.Millisecond)
	mustCtl(t, mdir, "swarm", "update", "--dispatcher-heartbeat", "0")
	period(time.Second) // adaptive: 1 s for a small cluster
}

// A manager reports its scheduler plugins, in order and with the
// program's own, in `node inspect` (JSON and --pretty).
func TestNodeInspectShowsSchedulerPlugins(t *testing.T) {
	m1 := start(t, 0).Members[0]
	want := []api.SchedulerPlugin{
		{Stage: "filter", Name: "NodeAvailable"}, {Stage: "filter", Name: "Executor"}, {Stage: "filter", Name: "Platform"},
		{Stage: "filter", Name: "Constraints"}, {Stage: "filter", Name: "MaxReplicas"}, {Stage: "filter", Name: "HostPorts"},
		{Stage: "filter", Name: "Resources"}, {Stage: "filter", Name: "ZoneA"},
		{Stage: "score", Name: "ServiceSpread", Weight: scheduler.WeightPrimary}, {Stage: "score", Name: "Binpack", Weight: scheduler.WeightPrimary},
		{Stage: "score", Name: "NodeLoad", Weight: scheduler.WeightSecondary},
	}
	var got []api.Node
	testutil.EventuallyWhy(t, 30*time.Second, "the manager's plugins in node inspect", func() (bool, string) {
		out, err := ctl(t, m1.DataDir, "node", "inspect", "--format", "json", m1.Node.NodeID())
		if err != nil {
			return false, err.Error()
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
			return false, out
		}
		if got[0].ManagerStatus == nil {
			return false, "no manager status yet"
		}
		return len(got[0].ManagerStatus.SchedulerPlugins) > 0, "no plugins reported yet"
	})
	if ps := got[0].ManagerStatus.SchedulerPlugins; !slices.Equal(ps, want) {
		t.Errorf("reported plugins\n%+v\nwant\n%+v", ps, want)
	}
	pretty := mustCtl(t, m1.DataDir, "node", "inspect", "--pretty", m1.Node.NodeID())
	if line := fmt.Sprintf("Scheduler Plugins: filter NodeAvailable, filter Executor, filter Platform, filter Constraints, filter MaxReplicas, "+
		"filter HostPorts, filter Resources, filter ZoneA, score ServiceSpread×%[1]d, score Binpack×%[1]d, score NodeLoad×1", scheduler.WeightPrimary); !strings.Contains(pretty, line) {
		t.Errorf("node inspect --pretty does not say\n%s\n%s", line, pretty)
	}
}
