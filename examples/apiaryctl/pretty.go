package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// printCluster prints the cluster's settings for people (swarm inspect
// --pretty); JSON is the default.
func printCluster(out io.Writer, c *api.Cluster) error {
	w := tabwriter.NewWriter(out, 0, 4, 1, ' ', 0)
	heartbeat := "adaptive (1s up to 2,000 nodes)"
	if p := c.Spec.Dispatcher.HeartbeatPeriod; p > 0 {
		heartbeat = p.String()
	}
	expiry := c.Spec.CAConfig.NodeCertExpiry
	expiryNote := ""
	if expiry == 0 {
		expiry, expiryNote = api.DefaultNodeCertExpiry, " (default)"
	}
	fmt.Fprintf(w, "ID:\t%s\n", c.ID)
	fmt.Fprintf(w, "Name:\t%s\n", c.Spec.Name)
	printLabels(w, c.Spec.Labels)
	fmt.Fprintf(w, "Dispatcher heartbeat:\t%s\n", heartbeat)
	fmt.Fprintf(w, "Certificate expiry:\t%s%s\n", days(expiry), expiryNote)
	fmt.Fprintf(w, "Task history limit:\t%d\n", c.Spec.Orchestration.TaskHistoryRetentionLimit)
	fmt.Fprintf(w, "Address pool:\t%s\n", strings.Join(c.Spec.Network.Pools(), ", "))
	fmt.Fprintf(w, "Subnet size:\t%d\n", c.Spec.Network.Size())
	printGossipKeys(w, c)
	fmt.Fprintf(w, "Created:\t%s\n", c.Meta.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "Updated:\t%s\n", c.Meta.UpdatedAt.Format(time.RFC3339))
	return w.Flush()
}

// printGossipKeys says how often the gossip key rotates and which keys
// the cluster holds: their clocks and ages, never their material (the
// control API does not return it).
func printGossipKeys(w io.Writer, c *api.Cluster) {
	rotation, note := c.Spec.Gossip.Rotation(), ""
	if c.Spec.Gossip.KeyRotation == 0 {
		note = " (default)"
	}
	fmt.Fprintf(w, "Gossip key rotation:\t%s%s\n", days(rotation), note)
	if p := c.GossipKeys.Primary(); p != nil {
		fmt.Fprintf(w, "Gossip keys:\t%d (primary %d, made %s)\n", len(c.GossipKeys.Keys), p.Lamport, p.CreatedAt.Format(time.RFC3339))
	}
}

// days prints a long duration in days as Docker does ("90 days"), a
// shorter one as Go does.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

// printNode prints a node for people (node inspect --pretty).
func printNode(out io.Writer, n *api.Node) error {
	w := tabwriter.NewWriter(out, 0, 4, 1, ' ', 0)
	fmt.Fprintf(w, "ID:\t%s\n", n.ID)
	fmt.Fprintf(w, "Hostname:\t%s\n", hostname(n))
	printLabels(w, n.Spec.Labels)
	fmt.Fprintf(w, "Status:\n")
	fmt.Fprintf(w, " State:\t%s\n", titled(string(n.Status.State)))
	if n.Status.Message != "" {
		fmt.Fprintf(w, " Message:\t%s\n", n.Status.Message)
	}
	fmt.Fprintf(w, " Availability:\t%s\n", titled(string(n.Spec.Availability)))
	if n.Status.Addr != "" {
		fmt.Fprintf(w, " Address:\t%s\n", n.Status.Addr)
	}
	fmt.Fprintf(w, "Role:\t%s\n", n.Spec.Role)
	if ms := n.ManagerStatus; ms != nil {
		fmt.Fprintf(w, "Manager Status:\n")
		fmt.Fprintf(w, " Address:\t%s\n", ms.Addr)
		fmt.Fprintf(w, " Raft Status:\t%s\n", titled(string(ms.Reachability)))
		fmt.Fprintf(w, " Leader:\t%s\n", map[bool]string{true: "Yes", false: "No"}[ms.Leader])
		fmt.Fprintf(w, " Scheduler Plugins:\t%s\n", schedulerPlugins(ms.SchedulerPlugins))
	}
	if d := n.Description; d != nil {
		fmt.Fprintf(w, "Platform:\n")
		fmt.Fprintf(w, " Operating System:\t%s\n", d.Platform.OS)
		fmt.Fprintf(w, " Architecture:\t%s\n", d.Platform.Architecture)
		fmt.Fprintf(w, "Executor:\t%s\n", d.Executor)
	}
	if c := n.Certificate; c != nil {
		fmt.Fprintf(w, "Certificate expires:\t%s\n", c.NotAfter.Format(time.RFC3339))
	}
	return w.Flush()
}

// schedulerPlugins prints a manager's pipeline on one line, in order:
// "filter NodeAvailable, ..., score Binpack×1000, ...".
func schedulerPlugins(ps []api.SchedulerPlugin) string {
	if len(ps) == 0 {
		return "(not reported)"
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Stage + " " + p.Name
		if p.Stage == api.SchedulerScore {
			out[i] += fmt.Sprintf("×%d", p.Weight)
		}
	}
	return strings.Join(out, ", ")
}

func printLabels(w io.Writer, labels map[string]string) {
	if len(labels) == 0 {
		return
	}
	fmt.Fprintf(w, "Labels:\n")
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		fmt.Fprintf(w, " - %s=%s\n", k, labels[k])
	}
}
