package endpoint

import (
	"net/netip"
	"strings"
	"testing"
)

func encoded(t testing.TB, lt LocalTask, addr netip.Addr) []byte {
	t.Helper()
	r, err := lt.record(addr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAdmit(t *testing.T) {
	known := map[string]netip.Addr{"a": addrA, "b": addrB}
	admit := AdmitWith(Checks{OwnerAddr: func(id string) (netip.Addr, bool) { a, ok := known[id]; return a, ok }})
	value := encoded(t, webTask("t1", 1, 31001, true), addrA)

	if err := admit("a", GossipNetwork, GossipTable, "t1", value); err != nil {
		t.Errorf("a's own task on its own address: %v", err)
	}
	for _, tc := range []struct {
		name, owner, key string
		value            []byte
		why              string
	}{
		{"foreign backend address", "b", "t1", value, `backends on 127.0.0.10, but node "b" is at 127.0.0.11`},
		{"unknown owner", "z", "t1", value, `address of node "z" is not known`},
		{"key not the task", "a", "t2", value, `entry key "t2" is not its task ID "t1"`},
		{"malformed", "a", "t1", []byte("{"), "malformed"},
	} {
		if err := admit(tc.owner, GossipNetwork, GossipTable, tc.key, tc.value); err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.why)
		}
	}
	if err := admit("a", "net-x", "other", "k", []byte("anything")); err != nil {
		t.Errorf("another table's entry: %v, want it left alone", err)
	}
	if err := Admit("b", GossipNetwork, GossipTable, "t1", value); err != nil {
		t.Errorf("Admit, which knows no addresses: %v", err)
	}
	if err := Admit("a", GossipNetwork, GossipTable, "t1", []byte(`{"t":"t1","s":"s","n":"n","a":"0.0.0.0"}`)); err == nil {
		t.Error("Admit took a wildcard backend address")
	}
}
