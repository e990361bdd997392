package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

func TestGossipKeyRotationBounds(t *testing.T) {
	for _, tc := range []struct {
		rotation time.Duration
		ok       bool
	}{
		{0, true},
		{api.MinGossipKeyRotation, true},
		{api.DefaultGossipKeyRotation, true},
		{api.MaxGossipKeyRotation, true},
		{api.MinGossipKeyRotation - time.Second, false},
		{api.MaxGossipKeyRotation + time.Second, false},
		{-time.Hour, false},
	} {
		spec := api.DefaultClusterSpec()
		spec.Gossip.KeyRotation = tc.rotation
		err := spec.Validate()
		if tc.ok {
			if err != nil {
				t.Errorf("key rotation %s refused: %v", tc.rotation, err)
			}
			continue
		}
		var ve *api.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), "gossip.key_rotation") {
			t.Errorf("key rotation %s: err = %v, want a validation error naming gossip.key_rotation", tc.rotation, err)
		}
	}
}

func TestGossipKeyRotationDefault(t *testing.T) {
	if got := api.DefaultClusterSpec().Gossip.Rotation(); got != api.DefaultGossipKeyRotation {
		t.Errorf("default spec rotates every %s, want %s", got, api.DefaultGossipKeyRotation)
	}
	if got := (api.GossipConfig{}).Rotation(); got != api.DefaultGossipKeyRotation {
		t.Errorf("zero rotation means %s, want the default %s", got, api.DefaultGossipKeyRotation)
	}
}

func testKeyring() api.GossipKeyring {
	key := bytes.Repeat([]byte{0xab, 0x17}, api.GossipKeyLen/2)
	return api.GossipKeyring{Keys: []api.GossipKey{{Key: key, Lamport: 1, CreatedAt: time.Unix(0, 0).UTC()}}}
}

// Key material prints as [redacted] however it is printed or logged, and
// still encodes in JSON (the store and the session carry it).
func TestSecretBytesRedacted(t *testing.T) {
	k := testKeyring()
	key := []byte(k.Keys[0].Key)
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("keys", "keyring", k, "key", k.Keys[0].Key)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("keys", "key", k.Keys[0].Key)
	out := fmt.Sprintf("%v %+v %#v %s %x %X %q %d", k, k, k, k.Keys[0].Key, k.Keys[0].Key, k.Keys[0].Key, k.Keys[0].Key, k.Keys[0].Key) + logs.String()
	for _, enc := range []string{hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)), base64.StdEncoding.EncodeToString(key), fmt.Sprint(key)} {
		if strings.Contains(out, enc) {
			t.Fatalf("key printed as %q in:\n%s", enc, out)
		}
	}
	if !strings.Contains(out, "[redacted]") {
		t.Fatalf("no [redacted] in:\n%s", out)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var back api.GossipKeyring
	if err := json.Unmarshal(b, &back); err != nil || !bytes.Equal(back.Keys[0].Key, key) {
		t.Fatalf("JSON round trip lost the key: %v", err)
	}
}

func TestGossipKeyringRedacted(t *testing.T) {
	k := testKeyring()
	r := k.Redacted()
	if len(r.Keys) != 1 || r.Keys[0].Key != nil || r.Keys[0].Lamport != 1 {
		t.Fatalf("redacted keyring %+v: want the key's clock without its material", r)
	}
	if k.Keys[0].Key == nil {
		t.Fatal("Redacted changed the original")
	}
}
