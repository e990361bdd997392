package gossip

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// testCA is a root CA issuing node certificates the way pki does (CN = node
// ID, OU = role, O = cluster ID), made with crypto/x509 directly: mesh does
// not import pki.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

var serials struct {
	sync.Mutex
	n int64
}

// issue makes a node certificate for nodeID and returns it as an Identity.
func (ca *testCA) issue(t testing.TB, nodeID string) Identity {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serials.Lock()
	serials.n++
	serial := serials.n + 1
	serials.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: nodeID, OrganizationalUnit: []string{"apiary-worker"}, Organization: []string{"cluster"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{Signer: key, Chain: [][]byte{der}}
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// testConfig is a member on 127.0.0.1 with a free port, the CA's trust and
// timing for a test run on a shared 2-core machine under -race, where a
// process may get a fraction of a core for seconds at a time. Failure
// detection is made very patient (probe every 3 s, 2 s to answer, suspicion
// 10× the interval): with the defaults, 50 starved members declare each
// other dead and come back over and over, which tests churn, not
// convergence. Push/pull is frequent so that a gossiped message lost to a
// full socket buffer is repaired within seconds. Tests of node death use
// fastFailureConfig.
func testConfig(t testing.TB, ca *testCA, id string) Config {
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.BindAddr = "127.0.0.1"
	cfg.BindPort = 0
	cfg.PrimaryKey = testKey(1)
	cfg.Identity = ca.issue(t, id)
	cfg.Verifier = NewCertPoolVerifier(ca.pool)
	cfg.ProbeInterval = 3 * time.Second
	cfg.ProbeTimeout = 2 * time.Second
	cfg.SuspicionMult = 10
	cfg.GossipInterval = 200 * time.Millisecond
	cfg.PushPullInterval = 3 * time.Second
	cfg.Logger = testutil.DiscardLogger()
	return cfg
}

func startMember(t testing.TB, cfg Config) *Member {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// startCluster starts n members made by cfgFor, each joining through a few
// of those before it (as a node given several managers' addresses would),
// so that no one member answers every join.
func startCluster(t testing.TB, n int, cfgFor func(i int) Config) []*Member {
	t.Helper()
	return formCluster(t, n, func(i int) *Member { return startMember(t, cfgFor(i)) })
}

// formCluster is startCluster with the members made by start.
func formCluster(t testing.TB, n int, start func(i int) *Member) []*Member {
	t.Helper()
	ms := make([]*Member, n)
	t0 := time.Now()
	for i := range ms {
		if n >= 500 && i%50 == 0 && testing.Verbose() {
			// Live progress for the large benchmarks (their log shows
			// only at the end, and a stalled one is killed by -timeout).
			fmt.Fprintf(os.Stderr, "%s: %d of %d members started after %v\n", t.Name(), i, n, time.Since(t0).Round(time.Second))
		}
		ms[i] = start(i)
		if i == 0 {
			continue
		}
		var seeds []string
		for range min(i, 3) {
			seeds = append(seeds, ms[mrand.IntN(i)].Addr())
		}
		if _, err := ms[i].Join(seeds); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	waitMembers(t, ms, 2*time.Minute)
	return ms
}

// waitMembers waits until every member sees all the others alive.
func waitMembers(t testing.TB, ms []*Member, timeout time.Duration) {
	t.Helper()
	testutil.EventuallyWhy(t, timeout, "every member to see the others", func() (bool, string) {
		for _, m := range ms {
			if n := len(m.Members()); n != len(ms)-1 {
				return false, fmt.Sprintf("%s sees %d of %d", m.NodeID(), n, len(ms)-1)
			}
		}
		return true, ""
	})
}

// waitTables waits until every member holds exactly want (sorted).
func waitTables(t testing.TB, ms []*Member, want []Entry, timeout time.Duration) {
	t.Helper()
	testutil.EventuallyWhy(t, timeout, "identical tables on every member", func() (bool, string) {
		for _, m := range ms {
			if got := m.Entries("", ""); !sameEntries(got, want) {
				return false, fmt.Sprintf("%s holds %d entries, want %d (first difference: %s; %s; %+v)",
					m.NodeID(), len(got), len(want), firstDiff(got, want), m.explainMissing(want), m.Stats())
			}
		}
		return true, ""
	})
}

// explainMissing says, for the first few entries of want this member lacks,
// what it knows of their owner: the reason a test is still waiting.
func (m *Member) explainMissing(want []Entry) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := fmt.Sprintf("%d held", m.npending)
	n := 0
	for _, w := range want {
		if r := m.st.get(entryID{w.Network, w.Table, w.Owner, w.Key}); r != nil && !r.e.deleted {
			continue
		}
		if n++; n > 3 {
			break
		}
		_, alive := m.alive[w.Owner]
		_, lost := m.lost[w.Owner]
		out += fmt.Sprintf("; lacks %s/%s/%s/%s (owner alive %v, lost %v, %d certificates)",
			w.Network, w.Table, w.Owner, w.Key, alive, lost, len(m.certs.byNode[w.Owner]))
	}
	return out
}

func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameEntry(a[i], b[i]) {
			return false
		}
	}
	return true
}

// sameEntry compares all but Version, which the expected lists leave out.
func sameEntry(a, b Entry) bool {
	return a.Network == b.Network && a.Table == b.Table && a.Owner == b.Owner && a.Key == b.Key && bytes.Equal(a.Value, b.Value)
}

func firstDiff(got, want []Entry) string {
	for i := range min(len(got), len(want)) {
		if !sameEntry(got[i], want[i]) {
			return fmt.Sprintf("got %s/%s/%s/%s=%q, want %s/%s/%s/%s=%q", got[i].Network, got[i].Table, got[i].Owner, got[i].Key, got[i].Value,
				want[i].Network, want[i].Table, want[i].Owner, want[i].Key, want[i].Value)
		}
	}
	return "one list is a prefix of the other"
}

// expected is the tables as the test wrote them, to compare with.
type expected map[entryID][]byte

func (x expected) put(t testing.TB, m *Member, network, table, key string, value []byte) {
	t.Helper()
	if err := m.Put(network, table, key, value); err != nil {
		t.Fatal(err)
	}
	x[entryID{network, table, m.NodeID(), key}] = value
}

func (x expected) del(t testing.TB, m *Member, network, table, key string) {
	t.Helper()
	if err := m.Delete(network, table, key); err != nil {
		t.Fatal(err)
	}
	delete(x, entryID{network, table, m.NodeID(), key})
}

func (x expected) entries() []Entry {
	var out []Entry
	for id, v := range x {
		out = append(out, Entry{Network: id.network, Table: id.table, Owner: id.owner, Key: id.key, Value: v})
	}
	sortEntries(out)
	return out
}

// eventLog records what a watcher saw.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(ev Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *eventLog) has(match func(Event) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.evs {
		if match(ev) {
			return true
		}
	}
	return false
}

func (l *eventLog) list() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.evs...)
}
