package dispatcher

import "time"

// Suspect tells the dispatcher that another failure detector (the routing
// mesh's gossip, issue 15) believes a node dead. Heartbeats alone need a
// node's whole grace (GraceMultiplier periods) to declare it down, and the
// period grows with the cluster (adaptive: 5 s at 10,000 nodes, so 15 s of
// grace); gossip's peer-to-peer probing does not slow down with size.
//
// A suspicion is evidence, not proof: the node is declared down only if
// it then misses its very next heartbeat, that is, if none arrives within
// a period and a slack of the last one (suspectSlack; already passed: down
// at once). A node that heartbeats is up, whatever gossip says (a
// partition of the gossip network alone, or a false suspicion of a starved
// process), and its heartbeat clears the suspicion. Unknown and silent nodes
// are left to their deadlines. Suspect does not block.
func (d *Dispatcher) Suspect(nodeID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return
	}
	s, ok := d.sessions[nodeID]
	if !ok || s.suspected {
		return
	}
	s.suspected = true
	d.log.Info("node suspected down by gossip: down unless its next heartbeat arrives", "node", nodeID,
		"since_last_heartbeat", time.Since(s.lastBeat).Round(time.Millisecond))
	d.expiries.Add(nodeID)
}

// suspectSlack is how late a suspected node's next heartbeat may be: half
// a period, at least two seconds. The agent sends one a period after the
// last answer, so the slack covers a round trip and a busy agent or
// leader. A node wrongly declared down loses its tasks to other nodes, and
// gossip's suspicions are least reliable exactly when heartbeats are slow
// too (a starved machine), so the slack is generous: at the default 1 s
// period the deadline is the grace's own (3 s), and the gain is at long
// periods, those of large clusters (5 s: down after 7.5 s instead of 15).
func suspectSlack(period time.Duration) time.Duration {
	return max(period/2, 2*time.Second)
}

// deadlineOf is when a session expires: its grace counted from its last
// heartbeat, shortened while it is suspected (d.mu held).
func (d *Dispatcher) deadlineOf(s *nodeSession) time.Time {
	grace := d.graceOf(s.period)
	if s.suspected {
		grace = min(grace, s.period+suspectSlack(s.period))
	}
	return s.lastBeat.Add(grace)
}
