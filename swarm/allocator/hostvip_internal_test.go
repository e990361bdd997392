package allocator

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// createWithHostVIP creates a service named name in s with the endpoint
// Endpoint gives it, and returns its host VIP.
func createWithHostVIP(t *testing.T, s *store.MemoryStore, name string) netip.Addr {
	t.Helper()
	svc := &api.Service{ID: api.NewID(), Spec: api.ServiceSpec{Annotations: api.Annotations{Name: name}}}
	err := s.Update(func(tx store.Tx) error {
		ep, err := Endpoint(tx, svc)
		if err != nil {
			return err
		}
		svc.Endpoint = ep
		return tx.CreateService(svc)
	})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return netip.MustParseAddr(svc.Endpoint.HostVIP)
}

// Host VIPs are given in order from where the cursor is (next fit), so
// that the store's address index grows at its end; an address a service
// holds is skipped, and the range wraps around.
func TestHostVIPsNextFit(t *testing.T) {
	s := store.NewMemoryStore(nil)
	t.Cleanup(s.Close)
	rng := netip.MustParsePrefix(api.HostVIPRange)
	last := fromU32(u32(rng.Addr()) + api.MaxHostVIPs)

	// The cursor at the range's last address: the next two wrap around.
	hostVIPNext.Store(api.MaxHostVIPs - 1)
	if ip := createWithHostVIP(t, s, "a"); ip != last {
		t.Fatalf("a: host VIP %s, want the range's last, %s", ip, last)
	}
	first := rng.Addr().Next()
	if ip := createWithHostVIP(t, s, "b"); ip != first {
		t.Fatalf("b: host VIP %s, want the range's first after wrapping, %s", ip, first)
	}
	if ip := createWithHostVIP(t, s, "c"); ip != first.Next() {
		t.Fatalf("c: host VIP %s, want the one after b's, %s", ip, first.Next())
	}

	// Back at the start: b's and c's addresses are held, so d gets the
	// third, not a held one.
	hostVIPNext.Store(0)
	if ip := createWithHostVIP(t, s, "d"); ip != first.Next().Next() {
		t.Fatalf("d: host VIP %s, want %s, the first free after the held two", ip, first.Next().Next())
	}
}

// Concurrent creates on one manager each read the store as it was before
// any of them committed; each still tries an address of its own, so none
// is refused by the store for an address another chose at once.
func TestHostVIPsConcurrentCreatesDoNotCollide(t *testing.T) {
	s := store.NewMemoryStore(nil)
	t.Cleanup(s.Close)
	createWithHostVIP(t, s, "before") // one held, to be skipped or not
	const n = 64
	vips := make([]netip.Addr, n)
	errs := make([]error, n)
	s.ViewShared(func(tx store.ReadTx) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { vips[i], errs[i] = NewSpaces(tx).hostVIP() })
		}
		wg.Wait()
	})
	seen := map[netip.Addr]bool{}
	for i, ip := range vips {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if seen[ip] {
			t.Fatalf("create %d: host VIP %s tried by another create too", i, ip)
		}
		seen[ip] = true
	}
}
