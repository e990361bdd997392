package allocator

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// NetworkIPAM decides network n's subnet and gateway as tx sees the store
// (and sets an overlay network's VNI, the lowest free from api.MinVNI):
// the subnet its spec asks for, refused when it overlaps another
// network's (naming both), or else the first subnet of cfg.Size() bits
// in cfg's pools, in order, that overlaps no network's. The gateway is
// the spec's or the subnet's first host address. It changes nothing: the
// control API writes the result in the transaction that creates the
// network, and the store refuses an overlap two writers chose at once.
func NetworkIPAM(tx store.ReadTx, cfg api.NetworkConfig, n *api.Network) (*api.IPAMConfig, error) {
	return networkIPAM(tx, cfg, cfg.Size(), n)
}

func networkIPAM(tx store.ReadTx, cfg api.NetworkConfig, size int, n *api.Network) (*api.IPAMConfig, error) {
	others, err := tx.FindNetworks(store.All)
	if err != nil {
		return nil, err
	}
	var taken []netip.Prefix
	owner := map[netip.Prefix]string{}
	vnis := map[uint32]bool{}
	for _, o := range others {
		if o.ID == n.ID {
			continue
		}
		vnis[o.VNI] = true
		if o.IPAM == nil {
			continue
		}
		if p, err := netip.ParsePrefix(o.IPAM.Subnet); err == nil {
			taken = append(taken, p)
			owner[p] = o.Spec.Name
		}
	}
	out := &api.IPAMConfig{}
	if n.Spec.IPAM != nil && n.Spec.IPAM.Subnet != "" {
		want, err := netip.ParsePrefix(n.Spec.IPAM.Subnet)
		if err != nil {
			return nil, fmt.Errorf("network %q: ipam.subnet: %w", n.Spec.Name, err)
		}
		for _, p := range taken {
			if p.Overlaps(want) {
				return nil, fmt.Errorf("network %q: ipam.subnet: %s overlaps subnet %s of network %q: %w", n.Spec.Name, want, p, owner[p], ErrSubnetOverlap)
			}
		}
		out.Subnet, out.Gateway = want.String(), n.Spec.IPAM.Gateway
	} else {
		p, err := freeSubnet(cfg.Pools(), size, taken)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", n.Spec.Name, err)
		}
		out.Subnet = p.String()
	}
	if out.Gateway == "" {
		out.Gateway = netip.MustParsePrefix(out.Subnet).Addr().Next().String()
	}
	if n.Spec.Driver == "" || n.Spec.Driver == api.DriverOverlay {
		// The lowest free VXLAN ID: networks are at most
		// api.MaxClusterNetworks, far fewer than the IDs.
		n.VNI = api.MinVNI
		for vnis[n.VNI] {
			n.VNI++
		}
	}
	return out, nil
}

// freeSubnet returns the first subnet of size bits in pools that
// overlaps none of taken. It walks the pools once, skipping past each
// taken range met, so a pool of 65,536 subnets with thousands taken costs
// a sort and one pass.
func freeSubnet(pools []string, size int, taken []netip.Prefix) (netip.Prefix, error) {
	sort.Slice(taken, func(i, j int) bool { return taken[i].Addr().Less(taken[j].Addr()) })
	for _, s := range pools {
		pool, err := netip.ParsePrefix(s)
		if err != nil || pool.Bits() > size {
			return netip.Prefix{}, fmt.Errorf("address pool %q: not a pool of /%d subnets", s, size)
		}
		step := uint64(1) << (32 - size)
		end := uint64(u32(lastAddr(pool)))
		// taken do not overlap one another (the store refuses it), so in
		// start order they are in end order too: i only moves forward.
		i := 0
		for c := uint64(u32(pool.Addr())); c <= end; c += step {
			cand := netip.PrefixFrom(fromU32(uint32(c)), size)
			for i < len(taken) && uint64(u32(lastAddr(taken[i]))) < c {
				i++
			}
			if i == len(taken) || !taken[i].Overlaps(cand) {
				return cand, nil
			}
			// Go past the taken range, to the subnet boundary after it.
			if past := uint64(u32(lastAddr(taken[i]))) + 1; past > c+step {
				c = (past+step-1)/step*step - step
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w (%v in /%d subnets)", ErrNoSubnet, pools, size)
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromU32(n uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// IngressNetwork returns the routing mesh's network a new cluster is made
// with (Docker's "ingress": overlay, Ingress set), for the caller to create
// in the transaction that creates the cluster. Every task of every service
// that publishes ingress ports has an address on it, so its subnet is
// IngressSizeFactor times as large as other networks' where the first pool
// has room (a /16 of the default pool; Docker's /24 runs out at 253 tasks,
// a common complaint of Swarm users), else of the pool's size.
func IngressNetwork(tx store.ReadTx, cfg api.NetworkConfig) (*api.Network, error) {
	n := &api.Network{ID: api.NewID(), Spec: api.NetworkSpec{
		Annotations: api.Annotations{Name: api.IngressNetworkName},
		Driver:      api.DriverOverlay,
		Ingress:     true,
	}}
	size := cfg.Size() - ingressExtraBits
	if pool, err := netip.ParsePrefix(cfg.Pools()[0]); err == nil && pool.Bits() > size {
		size = pool.Bits()
	}
	ipam, err := networkIPAM(tx, cfg, size, n)
	if err != nil {
		return nil, fmt.Errorf("ingress network: %w", err)
	}
	n.IPAM = ipam
	return n, nil
}

// ingressExtraBits makes the ingress subnet IngressSizeFactor times larger.
const ingressExtraBits = 8

// IngressSizeFactor is how many times larger than other networks' the
// ingress network's subnet is made, where the pool has room.
const IngressSizeFactor = 1 << ingressExtraBits
