package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/seal"
)

// keyFileLeaks says what of the node's private key node.key shows: a PEM
// marker, or the key's DER bytes.
func keyFileLeaks(t *testing.T, n *NodeIdentity) []string {
	t.Helper()
	file, err := os.ReadFile(filepath.Join(n.DataDir(), certDir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	var leaks []string
	if bytes.Contains(file, []byte("PRIVATE KEY")) {
		leaks = append(leaks, "a PRIVATE KEY marker")
	}
	b, _ := pem.Decode(n.cur.Load().keyPEM)
	if b == nil {
		t.Fatal("no key PEM in memory")
	}
	if bytes.Contains(file, b.Bytes) {
		leaks = append(leaks, "the key's DER bytes")
	}
	return leaks
}

// A sealed node key file holds neither a PEM marker nor the key's bytes;
// it loads with its sealer, is refused (ErrKeySealed) without one or with
// another; renewals keep it sealed; SetKeySealer seals a plain file, and
// SetKeySealer(nil) makes it plain again.
func TestSealedKeyFile(t *testing.T) {
	_, ca := newTestCA(t, time.Hour)
	n := newTestNode(t, ca, RoleManager)
	if len(keyFileLeaks(t, n)) == 0 {
		t.Fatal("a plain key file shows nothing: the check proves nothing")
	}
	k := seal.NewRandomKey()
	// A plain file loads with a sealer, unchanged; SetKeySealer seals it.
	loaded, err := LoadSealedNodeIdentity(n.DataDir(), k)
	if err != nil {
		t.Fatal(err)
	}
	if len(keyFileLeaks(t, loaded)) == 0 {
		t.Fatal("loading rewrote the plain key file")
	}
	if err := loaded.SetKeySealer(k); err != nil {
		t.Fatal(err)
	}
	if leaks := keyFileLeaks(t, loaded); len(leaks) > 0 {
		t.Fatalf("sealed key file shows %v", leaks)
	}
	if sealed, err := KeyFileSealed(n.DataDir()); err != nil || !sealed {
		t.Fatalf("KeyFileSealed: %v %v", sealed, err)
	}
	for name, s := range map[string]KeySealer{"no key": nil, "another key": seal.NewRandomKey()} {
		if _, err := loadNodeIdentity(n.DataDir(), s); !errors.Is(err, ErrKeySealed) {
			t.Fatalf("%s: %v, want ErrKeySealed", name, err)
		}
	}
	// A renewal writes the new key sealed.
	old := loaded.Leaf().SerialNumber
	if err := loaded.Renew(context.Background(), ca.LocalIssuer(loaded)); err != nil {
		t.Fatal(err)
	}
	if leaks := keyFileLeaks(t, loaded); len(leaks) > 0 {
		t.Fatalf("renewed key file shows %v", leaks)
	}
	again, err := LoadSealedNodeIdentity(n.DataDir(), k)
	if err != nil {
		t.Fatal(err)
	}
	if again.Leaf().SerialNumber.Cmp(old) == 0 {
		t.Fatal("the renewal was not persisted")
	}
	if _, err := x509.ParsePKCS8PrivateKey(mustDER(t, again.cur.Load().keyPEM)); err != nil {
		t.Fatalf("loaded key: %v", err)
	}
	if err := again.SetKeySealer(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadNodeIdentity(n.DataDir()); err != nil {
		t.Fatalf("plain again: %v", err)
	}
}

func mustDER(t *testing.T, p []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(p)
	if b == nil {
		t.Fatal("no PEM")
	}
	return b.Bytes
}
