package dockerapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
)

// Networks, secrets and configs: the cluster's, all of swarm scope.

func dockerNetwork(n *api.Network) network.Inspect {
	d := network.Inspect{Name: n.Spec.Name, ID: n.ID, Created: n.Meta.CreatedAt, Scope: "swarm", Driver: n.Spec.Driver, EnableIPv4: true,
		Internal: n.Spec.Internal, Attachable: n.Spec.Attachable, Ingress: n.Spec.Ingress, Labels: n.Spec.Labels,
		IPAM: network.IPAM{Driver: "default"}, Containers: map[string]network.EndpointResource{}, Options: map[string]string{}}
	if d.Driver == "" {
		d.Driver = api.DriverOverlay
	}
	ipam := n.IPAM
	if ipam == nil {
		ipam = n.Spec.IPAM
	}
	if ipam != nil {
		d.IPAM.Config = []network.IPAMConfig{{Subnet: ipam.Subnet, Gateway: ipam.Gateway}}
	}
	return d
}

func (s *Server) networkList(w http.ResponseWriter, r *http.Request) error {
	f, err := s.listFilters(r, "dangling", "driver", "id", "label", "name", "scope", "type")
	if err != nil {
		return err
	}
	nets, err := s.cfg.Backend.ListNetworks(r.Context(), control.NetworkFilter{})
	if err != nil {
		return err
	}
	out := []network.Summary{}
	for _, n := range nets {
		d := dockerNetwork(n)
		typ := "custom"
		if n.Spec.Ingress {
			typ = "builtin"
		}
		if !anyPrefix(f, "id", n.ID) || !anyContains(f, "name", d.Name) || !anyEqual(f, "driver", d.Driver) ||
			!anyEqual(f, "scope", "swarm") || !anyEqual(f, "type", typ) || !allLabels(f, "label", n.Spec.Labels) {
			continue
		}
		out = append(out, d)
	}
	return writeJSON(w, http.StatusOK, out)
}

// anyContains reports whether no values are given for key or v contains
// one of them (Docker's network name filter matches part of a name).
func anyContains(f filters.Args, key, v string) bool {
	vals := f.Get(key)
	if len(vals) == 0 {
		return true
	}
	for _, p := range vals {
		if strings.Contains(v, p) {
			return true
		}
	}
	return false
}

func (s *Server) networkInspect(w http.ResponseWriter, r *http.Request) error {
	if sc := r.URL.Query().Get("scope"); sc != "" && sc != "swarm" {
		return errNotFound(fmt.Errorf("network %s not found: Apiary's networks are of swarm scope", r.PathValue("id")))
	}
	n, err := s.cfg.Backend.GetNetwork(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, dockerNetwork(n))
}

func (s *Server) networkCreate(w http.ResponseWriter, r *http.Request) error {
	var req network.CreateRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	switch req.Driver {
	case "", api.DriverOverlay:
	default:
		return errInvalid(fmt.Errorf("network driver %q: Apiary's networks are cluster-wide overlay networks (docker network create --driver overlay)", req.Driver))
	}
	if req.Scope != "" && req.Scope != "swarm" {
		return errInvalid(fmt.Errorf("network scope %q: Apiary's networks are of swarm scope", req.Scope))
	}
	if req.ConfigOnly || req.ConfigFrom != nil || (req.EnableIPv6 != nil && *req.EnableIPv6) {
		return errInvalid(errors.New("config-only networks, config-from and IPv6 are not supported"))
	}
	spec := api.NetworkSpec{Annotations: api.Annotations{Name: req.Name, Labels: req.Labels}, Driver: api.DriverOverlay,
		Internal: req.Internal, Attachable: req.Attachable, Ingress: req.Ingress}
	if req.IPAM != nil {
		switch len(req.IPAM.Config) {
		case 0:
		case 1:
			c := req.IPAM.Config[0]
			if c.IPRange != "" || len(c.AuxAddress) > 0 {
				return errInvalid(errors.New("IPAM: ip-range and aux-address are not supported"))
			}
			spec.IPAM = &api.IPAMConfig{Subnet: c.Subnet, Gateway: c.Gateway}
		default:
			return errInvalid(errors.New("IPAM: one subnet per network"))
		}
	}
	n, err := s.cfg.Backend.CreateNetwork(r.Context(), spec)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, network.CreateResponse{ID: n.ID})
}

func (s *Server) networkRemove(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Backend.RemoveNetwork(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// objectMatches applies a secret or config list's filters: names are
// exact names, name a prefix, id a prefix of the ID.
func objectMatches(f filters.Args, id, name string, labels map[string]string) bool {
	if len(f.Get("names")) > 0 && !anyEqual(f, "names", name) {
		return false
	}
	return anyPrefix(f, "id", id) && anyPrefix(f, "name", name) && allLabels(f, "label", labels)
}

func (s *Server) secretList(w http.ResponseWriter, r *http.Request) error {
	f, err := s.listFilters(r, "id", "label", "name", "names")
	if err != nil {
		return err
	}
	list, err := s.cfg.Backend.ListSecrets(r.Context(), control.ObjectFilter{})
	if err != nil {
		return err
	}
	out := []swarm.Secret{}
	for _, x := range list {
		if objectMatches(f, x.ID, x.Spec.Name, x.Spec.Labels) {
			out = append(out, dockerSecret(x))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func dockerSecret(x *api.Secret) swarm.Secret {
	return swarm.Secret{ID: x.ID, Meta: meta(x.Meta), Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: x.Spec.Name, Labels: x.Spec.Labels}}}
}

func (s *Server) secretCreate(w http.ResponseWriter, r *http.Request) error {
	var d swarm.SecretSpec
	if err := readJSON(r, &d); err != nil {
		return err
	}
	if d.Driver != nil || d.Templating != nil {
		return errInvalid(errors.New("secret drivers and templating are not supported"))
	}
	x, err := s.cfg.Backend.CreateSecret(r.Context(), api.SecretSpec{Annotations: api.Annotations{Name: d.Name, Labels: d.Labels}, Data: d.Data})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, swarm.SecretCreateResponse{ID: x.ID})
}

func (s *Server) secretInspect(w http.ResponseWriter, r *http.Request) error {
	x, err := s.cfg.Backend.GetSecret(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, dockerSecret(x))
}

func (s *Server) secretRemove(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Backend.RemoveSecret(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) configList(w http.ResponseWriter, r *http.Request) error {
	f, err := s.listFilters(r, "id", "label", "name", "names")
	if err != nil {
		return err
	}
	list, err := s.cfg.Backend.ListConfigs(r.Context(), control.ObjectFilter{})
	if err != nil {
		return err
	}
	out := []swarm.Config{}
	for _, x := range list {
		if objectMatches(f, x.ID, x.Spec.Name, x.Spec.Labels) {
			out = append(out, dockerConfig(x))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func dockerConfig(x *api.Config) swarm.Config {
	return swarm.Config{ID: x.ID, Meta: meta(x.Meta), Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: x.Spec.Name, Labels: x.Spec.Labels}, Data: x.Spec.Data}}
}

func (s *Server) configCreate(w http.ResponseWriter, r *http.Request) error {
	var d swarm.ConfigSpec
	if err := readJSON(r, &d); err != nil {
		return err
	}
	if d.Templating != nil {
		return errInvalid(errors.New("config templating is not supported"))
	}
	x, err := s.cfg.Backend.CreateConfig(r.Context(), api.ConfigSpec{Annotations: api.Annotations{Name: d.Name, Labels: d.Labels}, Data: d.Data})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, swarm.ConfigCreateResponse{ID: x.ID})
}

func (s *Server) configInspect(w http.ResponseWriter, r *http.Request) error {
	x, err := s.cfg.Backend.GetConfig(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, dockerConfig(x))
}

func (s *Server) configRemove(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Backend.RemoveConfig(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
