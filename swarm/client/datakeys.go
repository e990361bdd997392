package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// DataKeyManager is one manager's standing in a change of the key that
// wraps the managers' data keys (autolock on or off, the unlock key
// rotated).
type DataKeyManager struct {
	ID   string
	Name string // its hostname, or its ID when it has none
	// Reachable: in the raft quorum's view (ManagerStatus).
	Reachable bool
	// Generation is the KEK generation it reports having applied (0: none
	// reported yet).
	Generation uint64
}

// DataKeyStatus is where the managers are in a change of the KEK.
type DataKeyStatus struct {
	// Generation is the cluster's (api.Cluster.KEKGeneration).
	Generation uint64
	// Applied have rewrapped (and, for a new unlock key, rotated) their
	// data keys to Generation.
	Applied []DataKeyManager
	// Pending are reachable managers that have not yet.
	Pending []DataKeyManager
	// Unreachable have not either, and cannot until they run again: a
	// locked one is unlocked with the key it had, then applies the new.
	Unreachable []DataKeyManager
}

// Done reports whether every reachable manager has applied the change.
func (s DataKeyStatus) Done() bool { return len(s.Pending) == 0 }

// DataKeys returns where the managers are in the last change of the KEK.
func (c *Client) DataKeys(ctx context.Context) (DataKeyStatus, error) {
	cl, err := c.GetCluster(ctx)
	if err != nil {
		return DataKeyStatus{}, err
	}
	nodes, err := c.ListNodes(ctx)
	if err != nil {
		return DataKeyStatus{}, err
	}
	st := DataKeyStatus{Generation: cl.KEKGeneration}
	for _, n := range nodes {
		if n.Spec.Role != api.NodeRoleManager || n.ManagerStatus == nil {
			continue
		}
		m := DataKeyManager{ID: n.ID, Name: n.ID, Reachable: n.ManagerStatus.Reachability == api.ReachabilityReachable}
		if n.Description != nil && n.Description.Hostname != "" {
			m.Name = n.Description.Hostname
		}
		if n.DataKey != nil {
			m.Generation = n.DataKey.KEKGeneration
		}
		switch {
		case m.Generation >= st.Generation:
			st.Applied = append(st.Applied, m)
		case m.Reachable:
			st.Pending = append(st.Pending, m)
		default:
			st.Unreachable = append(st.Unreachable, m)
		}
	}
	for _, l := range [][]DataKeyManager{st.Applied, st.Pending, st.Unreachable} {
		slices.SortFunc(l, func(a, b DataKeyManager) int { return strings.Compare(a.Name, b.Name) })
	}
	return st, nil
}

// WaitDataKeys waits until every reachable manager has applied the last
// change of the KEK (a manager that becomes unreachable meanwhile is no
// longer waited for), polling every period, and returns where they are.
// When ctx ends first, the error names the managers still pending.
func (c *Client) WaitDataKeys(ctx context.Context, period time.Duration) (DataKeyStatus, error) {
	for {
		st, err := c.DataKeys(ctx)
		if err == nil && st.Done() {
			return st, nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return st, fmt.Errorf("wait for the managers' data keys: %w", err)
			}
			return st, fmt.Errorf("%w: %s not yet rewrapped their data keys with the new key (generation %d): %s",
				ctx.Err(), have(len(st.Pending)), st.Generation, Names(st.Pending))
		case <-time.After(period):
		}
	}
}

func have(n int) string {
	if n == 1 {
		return "1 reachable manager has"
	}
	return fmt.Sprintf("%d reachable managers have", n)
}

// Names lists managers as "name (ID, at generation G)".
func Names(ms []DataKeyManager) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		if m.Name != m.ID {
			fmt.Fprintf(&b, "%s (%s, at generation %d)", m.Name, m.ID, m.Generation)
		} else {
			fmt.Fprintf(&b, "%s (at generation %d)", m.ID, m.Generation)
		}
	}
	return b.String()
}
