package endpoint

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/gossip"
	"github.com/apiary-io/apiary/swarm/api"
)

// The Runtime recomputes only the services whose entries changed; after
// any sequence of puts (valid or not) and deletes its state is the one
// desired computes from the whole table.
func TestIncrementalMatchesFromScratch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	r := bareRuntime("n1", balancer.NewRecorder())
	table := map[entryKey]gossip.Entry{}
	version := uint64(0)
	for step := range 200 {
		k := entryKey{owner: fmt.Sprintf("n%d", rng.IntN(4)), key: fmt.Sprintf("t%d", rng.IntN(12))}
		switch op := rng.IntN(10); {
		case op < 2:
			delete(table, k)
			r.drop(k)
		default:
			version++
			e := gossip.Entry{Network: GossipNetwork, Table: GossipTable, Owner: k.owner, Key: k.key,
				Version: version, Value: randomValue(t, rng, k)}
			table[k] = e
			r.put(e)
		}
		var all []owned
		for _, e := range table {
			if rec, err := decode(e.Value); err == nil && rec.Task == e.Key {
				all = append(all, owned{owner: e.Owner, rec: rec})
			}
		}
		if got, want := r.desired(), desired("n1", ingress, all); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: incremental state\n%+v\nfrom scratch\n%+v", step, got, want)
		}
	}
}

// randomValue is an entry for k: a task of one of three services, with
// random health, version and ports, or now and then a malformed value.
func randomValue(t *testing.T, rng *rand.Rand, k entryKey) []byte {
	if rng.IntN(15) == 0 {
		return []byte(`{"t":"` + k.key + `"}`)
	}
	s := rng.IntN(3)
	lt := webTask(k.key, uint64(rng.IntN(3)), uint16(31000+rng.IntN(4)), rng.IntN(3) > 0)
	lt.ServiceID, lt.ServiceName = fmt.Sprintf("svc%d", s), fmt.Sprintf("web%d", rng.IntN(4))
	lt.SpecVersion = uint64(rng.IntN(3))
	lt.HostVIP = netip.AddrFrom4([4]byte{127, 100, 0, byte(1 + rng.IntN(3))})
	if rng.IntN(2) == 0 {
		lt.Ports = append(lt.Ports, Port{PortConfig: api.PortConfig{Protocol: "udp", TargetPort: 53,
			PublishedPort: uint32(5300 + rng.IntN(2)), TrafficPolicy: api.TrafficPolicyLocal}, HostPort: 31053})
	}
	var node int
	if _, err := fmt.Sscanf(k.owner, "n%d", &node); err != nil {
		t.Fatal(err)
	}
	r, err := lt.record(netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + node)}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
