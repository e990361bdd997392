package gossip

import (
	"crypto/sha256"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate is the Member as memberlist's Delegate: messages in, broadcasts
// out, and the full state for push/pull. Its methods run on memberlist's
// goroutines and must not block.
type delegate Member

func (d *delegate) NodeMeta(limit int) []byte { return nil }

func (d *delegate) NotifyMsg(b []byte) {
	m := (*Member)(d)
	if len(b) == 0 {
		m.stats.malformed.Add(1)
		return
	}
	switch b[0] {
	case msgEntry:
		e, err := decodeEntryMsg(b[1:])
		if err != nil {
			m.dropped(&m.stats.malformed, "entry", err)
			return
		}
		m.receive(e, true)
	case msgBatch:
		bt, err := decodeBatch(b[1:])
		if err != nil {
			m.dropped(&m.stats.malformed, "batch", err)
			return
		}
		m.receiveBatch(bt)
	case msgReply:
		from, bt, err := decodeReply(b[1:])
		if err != nil {
			m.dropped(&m.stats.malformed, "reply", err)
			return
		}
		m.receiveReply(from, bt)
	case msgRequest:
		r, err := decodeRequest(b[1:])
		if err != nil {
			m.dropped(&m.stats.malformed, "request", err)
			return
		}
		m.answer(r)
	default:
		m.stats.malformed.Add(1)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState is everything held, with the certificates to check it.
func (d *delegate) LocalState(join bool) []byte {
	m := (*Member)(d)
	m.mu.Lock()
	defer m.mu.Unlock()
	es := m.st.records("", time.Now())
	fs := m.st.floors()
	nodes := map[string]bool{m.cfg.NodeID: true}
	for _, e := range es {
		nodes[e.owner] = true
	}
	for _, e := range fs {
		nodes[e.owner] = true
	}
	return encodeBatch(&batch{certs: m.certs.chains(nodes), entries: es, floors: fs})
}

func (d *delegate) MergeRemoteState(b []byte, join bool) {
	m := (*Member)(d)
	if len(b) == 0 || b[0] != msgBatch {
		m.stats.malformed.Add(1)
		return
	}
	bt, err := decodeBatch(b[1:])
	if err != nil {
		m.dropped(&m.stats.malformed, "push/pull state", err)
		return
	}
	// Entries merged from a push/pull are not gossiped on: the peer has
	// them, and a joining node would otherwise send out the whole state.
	for _, c := range bt.certs {
		m.addCert(c, false)
	}
	for _, e := range bt.entries {
		m.receive(e, false)
	}
	for _, e := range bt.floors {
		m.receiveFloor(e)
	}
}

// receiveBatch handles a direct reply or a gossiped certificate.
func (m *Member) receiveBatch(bt *batch) {
	for _, c := range bt.certs {
		m.addCert(c, len(bt.entries) == 0)
	}
	for _, e := range bt.entries {
		m.receive(e, false)
	}
	for _, e := range bt.floors {
		m.receiveFloor(e)
	}
}

// receiveReply handles a node's answer with all its entries: once they
// are applied, its live records still at or below its floor were deleted.
// The reply is not signed as a whole (its entries are): a peer forging one
// can at most make this node drop early entries at or below the owner's
// signed floor, which the owner no longer holds at those versions.
func (m *Member) receiveReply(from string, bt *batch) {
	m.receiveBatch(bt)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, alive := m.alive[from]; alive && from != m.cfg.NodeID {
		m.watch.publish(m.st.sweep(from))
	}
}

// receive takes a remote entry: held if its owner or certificate is not
// known yet, dropped unless verified, applied if newer (or if it raises its
// owner's floor), and gossiped on if it came by gossip and was stored.
func (m *Member) receive(e *wireEntry, gossipOn bool) {
	if e.owner == m.cfg.NodeID {
		return // this node is the source of its own entries
	}
	m.mu.Lock()
	want := m.st.wants(e)
	if m.closed || !want && !m.st.raisesFloor(e) {
		m.mu.Unlock()
		return
	}
	_, alive := m.alive[e.owner]
	nc := m.certs.find(e.owner, e.certFP)
	if !alive || nc == nil {
		m.hold(e)
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()

	if !m.verify(e, nc, want) {
		return
	}

	m.mu.Lock()
	if _, alive := m.alive[e.owner]; !alive { // went down while we checked
		m.mu.Unlock()
		return
	}
	var (
		evs     []Event
		changed bool
		err     error
	)
	if want {
		evs, changed, err = m.st.apply(e, time.Now(), m.cfg.ReapTime)
	} else {
		// An old version, not checked by Admit: only its floor counts.
		evs, err = m.st.takeFloor(e, time.Now())
	}
	m.watch.publish(evs)
	m.mu.Unlock()
	if err != nil {
		m.dropped(&m.stats.overLimit, "entry", err)
		return
	}
	if changed {
		m.stats.accepted.Add(1)
		if gossipOn {
			m.broadcastEntry(e)
		}
	}
}

// receiveFloor takes the floor of a remote entry sent as its proof
// (batch.floors), if it raises the owner's, without storing the entry. It
// is dropped if its owner or certificate is not known: the next push/pull
// carries it again.
func (m *Member) receiveFloor(e *wireEntry) {
	if e.owner == m.cfg.NodeID {
		return
	}
	m.mu.Lock()
	_, alive := m.alive[e.owner]
	nc := m.certs.find(e.owner, e.certFP)
	ok := !m.closed && alive && nc != nil && m.st.raisesFloor(e)
	m.mu.Unlock()
	if !ok || !m.verify(e, nc, false) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, alive := m.alive[e.owner]; !alive {
		return
	}
	evs, err := m.st.takeFloor(e, time.Now())
	m.watch.publish(evs)
	if err != nil {
		m.dropped(&m.stats.overLimit, "floor", err)
	}
}

// verify checks e's certificate, owner, signature and, if admit, the Admit
// hook, counting a failure under its reason.
func (m *Member) verify(e *wireEntry, nc *nodeCert, admit bool) bool {
	id, err := m.cfg.Verifier.VerifyChain(nc.chain)
	if err != nil {
		m.dropped(&m.stats.untrusted, "entry of "+e.owner, err)
		return false
	}
	if id != e.owner {
		m.stats.wrongOwner.Add(1)
		m.log.Debug("dropped entry claiming another owner", "claimed", e.owner, "certificate", id)
		return false
	}
	signed := e.signedBytes()
	key := verifiedKey(signed, e.sig)
	was := m.verified.get(key)
	if was&signatureChecked == 0 {
		if err := checkSignature(nc.chain[0], signed, e.sig); err != nil {
			m.dropped(&m.stats.badSignature, "entry of "+e.owner, err)
			return false
		}
		m.stats.signaturesChecked.Add(1)
		m.verified.add(key, signatureChecked)
	}
	if admit && !e.deleted && m.cfg.Admit != nil && was&admitted == 0 {
		if err := m.cfg.Admit(e.owner, e.network, e.table, e.key, e.value); err != nil {
			m.dropped(&m.stats.rejected, "entry of "+e.owner, err)
			return false
		}
		m.verified.add(key, admitted)
	}
	return true
}

// hold keeps e until its owner and certificate are known (m.mu held). Only
// the newest copy of an entry is kept: gossip delivers each several times.
func (m *Member) hold(e *wireEntry) {
	id := e.id()
	ps := m.pending[e.owner]
	if p, ok := ps[id]; ok {
		if e.newer(p.e) {
			p.e = e
			ps[id] = p
		}
		return
	}
	if m.npending >= MaxPending {
		m.stats.overLimit.Add(1)
		return
	}
	if ps == nil {
		if len(m.pending) >= MaxNodes {
			m.stats.overLimit.Add(1)
			return
		}
		ps = map[entryID]pending{}
		m.pending[e.owner] = ps
	}
	ps[id] = pending{e: e, since: time.Now()}
	m.npending++
}

// release takes the entries held for owner (m.mu held).
func (m *Member) release(owner string) []*wireEntry {
	ps := m.pending[owner]
	delete(m.pending, owner)
	m.npending -= len(ps)
	out := make([]*wireEntry, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.e)
	}
	return out
}

// addCert verifies and keeps a node's chain, then retries the entries held
// for that node. A chain new to this node and received by gossip is
// gossiped on.
func (m *Member) addCert(c certChain, gossipOn bool) {
	if c.owner == m.cfg.NodeID || len(c.der) == 0 {
		return
	}
	fp := sha256.Sum256(c.der[0])
	m.mu.Lock()
	known := m.certs.find(c.owner, fp) != nil
	m.mu.Unlock()
	if known {
		return
	}
	chain, err := parseChain(c.der)
	if err != nil {
		m.dropped(&m.stats.malformed, "certificate of "+c.owner, err)
		return
	}
	id, err := m.cfg.Verifier.VerifyChain(chain)
	if err != nil {
		m.dropped(&m.stats.untrusted, "certificate of "+c.owner, err)
		return
	}
	if id != c.owner {
		m.stats.wrongOwner.Add(1)
		m.log.Debug("dropped certificate claiming another owner", "claimed", c.owner, "certificate", id)
		return
	}
	m.mu.Lock()
	added := m.certs.add(c.owner, &nodeCert{fp: fp, chain: chain, der: c.der})
	var retry []*wireEntry
	if _, alive := m.alive[c.owner]; alive {
		retry = m.release(c.owner)
	}
	m.mu.Unlock()
	if added && gossipOn {
		m.broadcastCert(c)
	}
	for _, e := range retry {
		m.receive(e, true)
	}
}

// answer sends a node that asked this node's certificates and, if asked,
// its entries.
func (m *Member) answer(r request) {
	m.mu.Lock()
	bt := &batch{certs: m.certs.chains(map[string]bool{m.cfg.NodeID: true})}
	all := r.flags&flagWantAll != 0
	if all {
		bt.entries = m.st.records(m.cfg.NodeID, time.Now())
	}
	m.mu.Unlock()
	if all {
		m.send(r.from, encodeReply(m.cfg.NodeID, bt))
	} else {
		m.send(r.from, encodeBatch(bt))
	}
}

// ask requests a node's certificates (and entries if all) directly.
func (m *Member) ask(node string, all bool) {
	flags := flagWantCerts
	if all {
		flags |= flagWantAll
	}
	m.send(node, encodeRequest(request{from: m.cfg.NodeID, flags: flags}))
}

// send delivers msg to node over TCP from a goroutine of its own, at most
// maxConcurrentSends at once; beyond that the message is skipped.
func (m *Member) send(node string, msg []byte) {
	select {
	case m.sends <- struct{}{}:
	default:
		m.stats.sendsSkipped.Add(1)
		return
	}
	m.mu.Lock()
	n := m.alive[node]
	closed := m.closed
	if n != nil && !closed {
		m.wg.Add(1)
	}
	m.mu.Unlock()
	if n == nil || closed {
		<-m.sends
		return
	}
	go func() {
		defer m.wg.Done()
		defer func() { <-m.sends }()
		if err := m.ml.Load().SendReliable(n, msg); err != nil {
			m.log.Debug("direct send failed", "to", node, "err", err)
		}
	}()
}

// events is the Member as memberlist's EventDelegate. memberlist calls it
// with its node lock held: it must not call back into memberlist.
type events Member

func (ev *events) NotifyJoin(n *memberlist.Node) {
	m := (*Member)(ev)
	if n.Name == m.cfg.NodeID {
		return
	}
	node := *n // memberlist keeps changing its own copy
	m.mu.Lock()
	if _, ok := m.alive[n.Name]; !ok {
		m.numNodes.Add(1)
	}
	m.alive[n.Name] = &node
	// A node back from being declared dead (a false suspicion, a
	// partition healed, a restart) has entries everyone dropped: housekeep
	// asks it for them (a few times, as a direct request can be lost)
	// rather than wait for push/pull to reach each node.
	if _, wasLost := m.lost[n.Name]; wasLost {
		delete(m.lost, n.Name)
		m.refetch[n.Name] = refetchTimes
	}
	retry := m.release(n.Name)
	closed := m.closed
	if !closed && len(retry) > 0 {
		m.wg.Add(1)
	}
	m.mu.Unlock()
	if closed || len(retry) == 0 {
		return
	}
	go func() {
		defer m.wg.Done()
		for _, e := range retry {
			m.receive(e, true)
		}
	}()
}

func (ev *events) NotifyLeave(n *memberlist.Node) {
	m := (*Member)(ev)
	if n.Name == m.cfg.NodeID {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.alive[n.Name]; ok {
		m.numNodes.Add(-1)
	}
	delete(m.alive, n.Name)
	delete(m.refetch, n.Name)
	m.release(n.Name)
	if len(m.lost) < MaxNodes {
		m.lost[n.Name] = time.Now().Add(m.cfg.ReapTime)
	}
	evs := m.st.dropOwner(n.Name)
	evs = append(evs, Event{Kind: EventNodeDown, Entry: Entry{Owner: n.Name}})
	m.stats.nodesDown.Add(1)
	m.watch.publish(evs)
	m.log.Info("node down", "peer", n.Name, "entries_dropped", len(evs)-1)
}

func (ev *events) NotifyUpdate(n *memberlist.Node) {
	m := (*Member)(ev)
	if n.Name == m.cfg.NodeID {
		return
	}
	node := *n
	m.mu.Lock()
	if _, ok := m.alive[n.Name]; ok {
		m.alive[n.Name] = &node
	}
	m.mu.Unlock()
}

// housekeepEvery is how often tombstones are reaped and held entries
// looked at; askAfter is how long an entry waits for its owner's
// certificate to arrive by gossip before the owner is asked for it;
// refetchTimes is how many times a node back from the dead is asked for
// its entries, requestEvery apart.
const (
	housekeepEvery = 250 * time.Millisecond
	askAfter       = time.Second
	refetchTimes   = 3
)

// askReq is a request housekeep makes.
type askReq struct {
	node string
	all  bool
}

func (m *Member) housekeep() {
	defer m.wg.Done()
	t := time.NewTicker(housekeepEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			for _, r := range m.tidy(now) {
				m.ask(r.node, r.all)
			}
		}
	}
}

// tidy reaps tombstones, forgets old departures and expired held entries,
// and returns the requests to make.
func (m *Member) tidy(now time.Time) []askReq {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.reap(now)
	for n, until := range m.lost {
		if !now.Before(until) {
			delete(m.lost, n)
		}
	}
	var ask []askReq
	for n, left := range m.refetch {
		if now.Sub(m.lastAsked[n]) < requestEvery {
			continue
		}
		m.lastAsked[n] = now
		ask = append(ask, askReq{node: n, all: true})
		if left <= 1 {
			delete(m.refetch, n)
		} else {
			m.refetch[n] = left - 1
		}
	}
	for owner, ps := range m.pending {
		oldest := now
		for id, p := range ps {
			if now.Sub(p.since) >= m.cfg.PendingTimeout {
				delete(ps, id)
				m.npending--
				m.stats.pendingExpired.Add(1)
			} else if p.since.Before(oldest) {
				oldest = p.since
			}
		}
		if len(ps) == 0 {
			delete(m.pending, owner)
			continue
		}
		_, alive := m.alive[owner]
		if alive && now.Sub(oldest) >= askAfter && now.Sub(m.lastAsked[owner]) >= requestEvery {
			m.lastAsked[owner] = now
			ask = append(ask, askReq{node: owner})
		}
	}
	for _, n := range m.st.stale(now, m.cfg.NodeID) {
		if _, alive := m.alive[n]; alive && now.Sub(m.lastAsked[n]) >= requestEvery {
			m.lastAsked[n] = now
			ask = append(ask, askReq{node: n, all: true})
		}
	}
	for n, t := range m.lastAsked {
		if _, again := m.refetch[n]; !again && now.Sub(t) >= requestEvery {
			delete(m.lastAsked, n)
		}
	}
	return ask
}
