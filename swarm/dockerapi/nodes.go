package dockerapi

import (
	"net/http"

	"github.com/docker/docker/api/types/swarm"

	"github.com/apiary-io/apiary/swarm/api"
)

func (s *Server) nodeList(w http.ResponseWriter, r *http.Request) error {
	f, err := s.listFilters(r, "id", "label", "membership", "name", "node.label", "role")
	if err != nil {
		return err
	}
	nodes, err := s.cfg.Backend.ListNodes(r.Context())
	if err != nil {
		return err
	}
	out := []swarm.Node{}
	for _, n := range nodes {
		d := fromAPINode(n)
		name := d.Spec.Name
		if name == "" {
			name = d.Description.Hostname
		}
		// Every node the cluster records was accepted: Apiary has no
		// pending membership.
		if !anyPrefix(f, "id", n.ID) || !anyPrefix(f, "name", name) || !anyEqual(f, "role", string(n.Spec.Role)) ||
			!anyEqual(f, "membership", "accepted") || !allLabels(f, "label", d.Description.Engine.Labels) ||
			!allLabels(f, "node.label", n.Spec.Labels) {
			continue
		}
		out = append(out, d)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) nodeInspect(w http.ResponseWriter, r *http.Request) error {
	n, err := s.cfg.Backend.GetNode(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, fromAPINode(n))
}

// nodeUpdate replaces the node's spec at the version given, as Docker's:
// role, availability, name and labels.
func (s *Server) nodeUpdate(w http.ResponseWriter, r *http.Request) error {
	var spec swarm.NodeSpec
	if err := readJSON(r, &spec); err != nil {
		return err
	}
	version, err := queryVersion(r, "node")
	if err != nil {
		return err
	}
	ours := api.NodeSpec{Annotations: api.Annotations{Name: spec.Name, Labels: spec.Labels},
		Role: api.NodeRole(spec.Role), Availability: api.NodeAvailability(spec.Availability)}
	if _, err := s.cfg.Backend.UpdateNode(r.Context(), r.PathValue("id"), version, ours); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) nodeRemove(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Backend.RemoveNode(r.Context(), r.PathValue("id"), queryBool(r, "force")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
