package controlapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/allocator"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
)

// ErrInUse marks a removal refused because others use the object; test
// with errors.Is.
var ErrInUse = control.ErrInUse

// CreateNetwork validates spec (driver overlay when unset) and creates the
// network with its subnet (and, overlay, its VNI) in one write: the subnet the spec asks for,
// refused when it overlaps another network's (naming both), or the first
// free one of the cluster's address pool (api.NetworkConfig). Names are
// unique (api.ErrNameConflict); a cluster has at most one ingress network
// and api.MaxClusterNetworks networks.
func (s *Server) CreateNetwork(ctx context.Context, spec api.NetworkSpec) (*api.Network, error) {
	spec = spec.Copy()
	if spec.Driver == "" {
		spec.Driver = api.DriverOverlay
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	n := &api.Network{ID: api.NewID(), Spec: spec}
	write := func(tx store.Tx) error {
		nets, err := tx.FindNetworks(store.All)
		if err != nil {
			return err
		}
		if len(nets) >= api.MaxClusterNetworks {
			return invalid("network %q: the cluster has %d networks, the most it may have", spec.Name, len(nets))
		}
		for _, o := range nets {
			if spec.Ingress && o.Spec.Ingress {
				return invalid("network %q: ingress: the cluster has an ingress network already, %q", spec.Name, o.Spec.Name)
			}
		}
		var cfg api.NetworkConfig
		if cs, err := tx.FindClusters(store.All); err == nil && len(cs) > 0 {
			cfg = cs[0].Spec.Network
		}
		ipam, err := allocator.NetworkIPAM(tx, cfg, n)
		if errors.Is(err, allocator.ErrSubnetOverlap) || errors.Is(err, allocator.ErrNoSubnet) {
			return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
		if err != nil {
			return err
		}
		n.IPAM = ipam
		return tx.CreateNetwork(n)
	}
	// A subnet or VNI another writer took meanwhile (a conflict:
	// store.SubnetTakenError, VNITakenError) is seen on the next try: a
	// subnet asked for is refused, one chosen from the pool passed over.
	err := s.store.UpdateContext(ctx, write)
	for try := 0; try < maxPortRetries && isConflict(err) && ctx.Err() == nil; try++ {
		err = s.store.UpdateContext(ctx, write)
	}
	if err != nil {
		return nil, fmt.Errorf("create network %q: %w", spec.Name, err)
	}
	return s.GetNetwork(ctx, n.ID)
}

// GetNetwork returns a network by ID, name or unique ID prefix.
func (s *Server) GetNetwork(ctx context.Context, ref string) (*api.Network, error) {
	var out *api.Network
	var err error
	s.store.View(func(tx store.ReadTx) {
		out, err = lookup("network", ref, tx.GetNetwork, tx.FindNetworks)
	})
	return out, err
}

// ListNetworks returns the networks that match filter, ordered by name.
func (s *Server) ListNetworks(ctx context.Context, filter control.NetworkFilter) ([]*api.Network, error) {
	var all []*api.Network
	var err error
	s.store.View(func(tx store.ReadTx) { all, err = tx.FindNetworks(store.All) })
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, n := range all {
		if networkMatches(n, filter) {
			out = append(out, n)
		}
	}
	sortByName(out, func(x *api.Network) string { return x.Spec.Name }, func(x *api.Network) string { return x.ID })
	return out, nil
}

// networkMatches applies a filter as docker network ls does.
func networkMatches(n *api.Network, f control.NetworkFilter) bool {
	return objectMatches(n.ID, n.Spec.Annotations, f)
}

// objectMatches applies a filter as docker network|secret|config ls do:
// one name (part of it) and one ID prefix of those given, and every label.
func objectMatches(id string, a api.Annotations, f control.ObjectFilter) bool {
	anyOf := func(xs []string, match func(string) bool) bool {
		if len(xs) == 0 {
			return true
		}
		for _, x := range xs {
			if match(x) {
				return true
			}
		}
		return false
	}
	if !anyOf(f.Names, func(x string) bool { return strings.Contains(a.Name, x) }) ||
		!anyOf(f.IDs, func(x string) bool { return strings.HasPrefix(id, x) }) {
		return false
	}
	for _, l := range f.Labels {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := a.Labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

// maxNamedUsers is how many users of a network an in-use error names.
const maxNamedUsers = 10

// RemoveNetwork deletes a network that no service uses: one that does
// (its template names the network, or it has a VIP there, as services
// publishing ingress ports have on the ingress network) is refused with
// ErrInUse, naming them. Its subnet is free again at once.
func (s *Server) RemoveNetwork(ctx context.Context, ref string) error {
	err := s.store.UpdateContext(ctx, func(tx store.Tx) error {
		n, err := lookup("network", ref, tx.GetNetwork, tx.FindNetworks)
		if err != nil {
			return err
		}
		users, err := tx.FindServices(store.ByReferencedNetwork(n.ID))
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return inUse("network", n.Spec.Name, users)
		}
		return tx.DeleteNetwork(n.ID)
	})
	if err != nil {
		return fmt.Errorf("remove network %q: %w", ref, err)
	}
	return nil
}

// inUse is the error of a removal refused because services use the
// object, naming at most maxNamedUsers of them.
func inUse(kind, name string, users []*api.Service) error {
	sortByName(users, func(x *api.Service) string { return x.Spec.Name }, func(x *api.Service) string { return x.ID })
	var names []string
	for _, u := range users[:min(len(users), maxNamedUsers)] {
		names = append(names, fmt.Sprintf("%q", u.Spec.Name))
	}
	more := ""
	if len(users) > maxNamedUsers {
		more = fmt.Sprintf(" and %d more", len(users)-maxNamedUsers)
	}
	return fmt.Errorf("%s %q is used by service(s) %s%s: %w", kind, name, strings.Join(names, ", "), more, ErrInUse)
}

// resolveNetworks replaces the network references of a service's template
// (ID, name or unique ID prefix, as the user wrote them) with network IDs,
// as swarmkit does when it writes a service: the store's index of who
// uses a network, and every reader after it, then deal in IDs only. A
// reference to no network is refused naming its field; so are the ingress
// network (services reach it by publishing ingress ports) and one network
// named twice.
func resolveNetworks(tx store.ReadTx, spec *api.ServiceSpec) error {
	nets := spec.TaskTemplate.Networks
	seen := map[string]int{}
	for i := range nets {
		field := fmt.Sprintf("task_template.networks[%d].target", i)
		n, err := lookup("network", nets[i].Target, tx.GetNetwork, tx.FindNetworks)
		if errors.Is(err, ErrNotFound) {
			return invalid("service %q: %s: network %q not found", spec.Name, field, nets[i].Target)
		}
		if err != nil {
			return fmt.Errorf("service %q: %s: %w", spec.Name, field, err)
		}
		if n.Spec.Ingress {
			return invalid("service %q: %s: %q is the ingress network, which services join by publishing ports in ingress mode", spec.Name, field, nets[i].Target)
		}
		if j, dup := seen[n.ID]; dup {
			return invalid("service %q: %s: network %q is also task_template.networks[%d]", spec.Name, field, n.Spec.Name, j)
		}
		seen[n.ID] = i
		nets[i].Target = n.ID
	}
	return nil
}
