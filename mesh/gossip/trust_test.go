package gossip

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// trustPair is two members, a and b, that see each other and each other's
// certificate, with a refusing key "forbidden" through Admit.
func trustPair(t *testing.T) (ca *testCA, a, b *Member) {
	t.Helper()
	ca = newTestCA(t, "root")
	ms := startCluster(t, 2, func(i int) Config {
		cfg := testConfig(t, ca, fmt.Sprintf("node-%c", 'a'+i))
		if i == 0 {
			cfg.Admit = func(owner, network, table, key string, value []byte) error {
				if key == "forbidden" {
					return errors.New("node does not run that task")
				}
				return nil
			}
		}
		return cfg
	})
	a, b = ms[0], ms[1]
	// Once a holds an entry of b, it holds b's certificate.
	if err := b.Put("app", "endpoints", "first", []byte("x")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, convergeTimeout, "a to hold b's first entry", func() bool {
		_, ok := a.Get("app", "endpoints", "node-b", "first")
		return ok
	})
	return ca, a, b
}

// forge signs e with sg as the entry's owner would.
func forge(t *testing.T, sg *signer, e *wireEntry) *wireEntry {
	t.Helper()
	e.certFP = sg.fp
	sig, err := sg.sign(e.signedBytes())
	if err != nil {
		t.Fatal(err)
	}
	e.sig = sig
	return e
}

func entryOfB(key, value string) *wireEntry {
	return &wireEntry{network: "app", table: "endpoints", owner: "node-b", key: key,
		epoch: uint64(time.Now().UnixNano()), version: 1, value: []byte(value)}
}

func mustSigner(t *testing.T, id Identity) *signer {
	t.Helper()
	sg, err := newSigner(id)
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

func TestEntriesFailingVerificationAreDroppedAndCounted(t *testing.T) {
	ca, a, b := trustPair(t)
	inject := func(msg []byte) { (*delegate)(a).NotifyMsg(msg) }
	mustLack := func(key string) {
		t.Helper()
		if _, ok := a.Get("app", "endpoints", "node-b", key); ok {
			t.Errorf("a holds the entry %q that should have been dropped", key)
		}
	}

	t.Run("badly signed", func(t *testing.T) {
		e := forge(t, b.signer, entryOfB("tampered", "10.0.0.1:80"))
		e.value = []byte("10.6.6.6:80") // changed after signing
		inject(encodeEntryMsg(e))
		if got := a.Stats().BadSignature; got != 1 {
			t.Errorf("BadSignature = %d, want 1", got)
		}
		mustLack("tampered")
	})

	t.Run("signed under another CA", func(t *testing.T) {
		other := newTestCA(t, "other root")
		sg := mustSigner(t, other.issue(t, "node-b")) // right name, wrong CA
		inject(encodeBatch(&batch{certs: []certChain{{owner: "node-b", der: sg.der}}}))
		inject(encodeEntryMsg(forge(t, sg, entryOfB("foreign", "10.0.0.2:80"))))
		if got := a.Stats().Untrusted; got != 1 {
			t.Errorf("Untrusted = %d, want 1", got)
		}
		mustLack("foreign")
	})

	t.Run("claiming another owner", func(t *testing.T) {
		sg := mustSigner(t, ca.issue(t, "node-c")) // trusted, but not node-b
		inject(encodeBatch(&batch{certs: []certChain{{owner: "node-b", der: sg.der}}}))
		inject(encodeEntryMsg(forge(t, sg, entryOfB("impostor", "10.0.0.3:80"))))
		if got := a.Stats().WrongOwner; got != 1 {
			t.Errorf("WrongOwner = %d, want 1", got)
		}
		mustLack("impostor")
	})

	t.Run("rejected by Admit", func(t *testing.T) {
		if err := b.Put("app", "endpoints", "forbidden", []byte("10.0.0.4:80")); err != nil {
			t.Fatal(err)
		}
		if err := b.Put("app", "endpoints", "allowed", []byte("10.0.0.5:80")); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, convergeTimeout, "the allowed entry, and the forbidden one refused", func() bool {
			_, ok := a.Get("app", "endpoints", "node-b", "allowed")
			return ok && a.Stats().Rejected >= 1
		})
		mustLack("forbidden")
	})

	t.Run("malformed", func(t *testing.T) {
		before := a.Stats().Malformed
		inject([]byte{msgEntry, 3, 'a', 'p'})
		inject([]byte{42})
		if got := a.Stats().Malformed - before; got != 2 {
			t.Errorf("Malformed grew by %d, want 2", got)
		}
	})

	if s := a.Stats(); s.Accepted == 0 {
		t.Errorf("a accepted nothing from b: %+v", s)
	}
}

// After a root rotation that leaves b's CA out, b's certificate, already
// known, no longer vouches for its new entries.
func TestARootRotationStopsTrustInOldCertificates(t *testing.T) {
	_, a, b := trustPair(t)
	a.cfg.Verifier.(*CertPoolVerifier).SetRoots(newTestCA(t, "new root").pool)
	(*delegate)(a).NotifyMsg(encodeEntryMsg(forge(t, b.signer, entryOfB("after-rotation", "x"))))
	if got := a.Stats().Untrusted; got != 1 {
		t.Errorf("Untrusted = %d, want 1", got)
	}
	if _, ok := a.Get("app", "endpoints", "node-b", "after-rotation"); ok {
		t.Error("an entry signed under the old root was accepted")
	}
}

func TestBadInputIsRefusedNamingTheField(t *testing.T) {
	ca := newTestCA(t, "root")
	m := startMember(t, testConfig(t, ca, "node-a"))
	for _, c := range []struct {
		name             string
		net, table, key  string
		value            []byte
		wantErrSubstring string
	}{
		{"empty network", "", "t", "k", nil, "network is empty"},
		{"long table", "n", strings.Repeat("t", MaxNameLen+1), "k", nil, "table is 65 bytes"},
		{"long key", "n", "t", strings.Repeat("k", MaxKeyLen+1), nil, "key is 129 bytes"},
		{"big value", "n", "t", "k", make([]byte, MaxValueSize+1), fmt.Sprintf("value is %d bytes", MaxValueSize+1)},
	} {
		err := m.Put(c.net, c.table, c.key, c.value)
		if err == nil || !strings.Contains(err.Error(), c.wantErrSubstring) {
			t.Errorf("%s: Put error %v, want one containing %q", c.name, err, c.wantErrSubstring)
		}
	}
	if got := m.Entries("", ""); len(got) != 0 {
		t.Errorf("refused Puts left entries: %v", got)
	}
	if err := m.SetKeys(make([]byte, 10)); err == nil || !strings.Contains(err.Error(), "primary key is 10 bytes") {
		t.Errorf("SetKeys with a 10-byte key: %v", err)
	}
}

func TestConfigIsCheckedBeforeStarting(t *testing.T) {
	ca := newTestCA(t, "root")
	other := newTestCA(t, "other")
	for _, c := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no node ID", func(c *Config) { c.NodeID = "" }, "Config.NodeID is empty"},
		{"no key", func(c *Config) { c.PrimaryKey = nil }, "Config.PrimaryKey is empty"},
		{"short accepted key", func(c *Config) { c.AcceptedKeys = [][]byte{{1, 2}} }, "Config.AcceptedKeys[0] is 2 bytes"},
		{"no verifier", func(c *Config) { c.Verifier = nil }, "Config.Verifier is nil"},
		{"bad bind address", func(c *Config) { c.BindAddr = "localhost" }, "Config.BindAddr"},
		{"probe timeout too long", func(c *Config) { c.ProbeTimeout = 2 * c.ProbeInterval }, "Config.ProbeTimeout"},
		{"untrusted identity", func(c *Config) { c.Identity = other.issue(t, "node-a") }, "not trusted"},
		{"identity of another node", func(c *Config) { c.Identity = ca.issue(t, "node-z") }, `for node "node-z"`},
		{"key not the certificate's", func(c *Config) { c.Identity.Signer = ca.issue(t, "node-a").Signer }, "does not hold the key"},
	} {
		cfg := testConfig(t, ca, "node-a")
		c.change(&cfg)
		m, err := New(cfg)
		if err == nil {
			_ = m.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
