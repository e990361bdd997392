package dockerapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/versions"

	"github.com/apiary-io/apiary/swarm/api"
)

func (s *Server) serviceList(w http.ResponseWriter, r *http.Request) error {
	f, err := s.listFilters(r, "id", "label", "mode", "name")
	if err != nil {
		return err
	}
	status, err := strictBool(r, "status")
	if err != nil {
		return err
	}
	if versions.LessThan(requestVersion(r), "1.41") {
		status = false
	}
	services, err := s.cfg.Backend.ListServices(r.Context())
	if err != nil {
		return err
	}
	out := []swarm.Service{}
	for _, svc := range services {
		mode := svc.Spec.Mode.ModeName()
		if !anyPrefix(f, "id", svc.ID) || !anyPrefix(f, "name", svc.Spec.Name) || !anyEqual(f, "mode", mode) ||
			!allLabels(f, "label", svc.Spec.Labels) {
			continue
		}
		d := fromAPIService(svc)
		if !status {
			d.ServiceStatus = nil
		}
		out = append(out, d)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) serviceInspect(w http.ResponseWriter, r *http.Request) error {
	insertDefaults, err := strictBool(r, "insertDefaults")
	if err != nil {
		return err
	}
	svc, err := s.cfg.Backend.GetService(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	d := fromAPIService(svc)
	if insertDefaults {
		d.Spec = dockerSpec(svc.Spec, true)
		if svc.PreviousSpec != nil {
			p := dockerSpec(*svc.PreviousSpec, true)
			d.PreviousSpec = &p
		}
	}
	// The counts are for listings (status=true), as Docker's.
	d.ServiceStatus = nil
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) serviceCreate(w http.ResponseWriter, r *http.Request) error {
	var d swarm.ServiceSpec
	if err := readJSON(r, &d); err != nil {
		return err
	}
	spec, err := specFromDocker(d, nil)
	if err != nil {
		return errInvalid(err)
	}
	svc, err := s.cfg.Backend.CreateService(r.Context(), spec)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, swarm.ServiceCreateResponse{ID: svc.ID, Warnings: warnings(d)})
}

// warnings tell a Docker user what Apiary keeps but does not enforce,
// naming only the settings the spec sets: the docker CLI sends some as
// empty values (Privileges {}, DNSConfig {}, Init false) on every create.
func warnings(d swarm.ServiceSpec) []string {
	var out []string
	if c := d.TaskTemplate.ContainerSpec; c != nil {
		var kept []string
		add := func(set bool, name string) {
			if set {
				kept = append(kept, name)
			}
		}
		add(c.Hostname != "", "hostname")
		add(len(c.Hosts) > 0, "hosts")
		add(c.DNSConfig != nil && len(c.DNSConfig.Nameservers)+len(c.DNSConfig.Search)+len(c.DNSConfig.Options) > 0, "DNS")
		add(c.Privileges != nil && *c.Privileges != (swarm.Privileges{}), "privileges")
		add(c.Init != nil && *c.Init, "init")
		add(c.TTY, "TTY")
		add(c.ReadOnly, "read-only")
		add(len(c.Sysctls) > 0, "sysctls")
		add(len(c.CapabilityAdd)+len(c.CapabilityDrop) > 0, "capabilities")
		add(len(c.Ulimits) > 0, "ulimits")
		if len(kept) > 0 {
			out = append(out, "Apiary keeps but does not apply these container settings: "+strings.Join(kept, ", "))
		}
	}
	if d.TaskTemplate.LogDriver != nil {
		out = append(out, "Apiary keeps but does not apply the log driver: task output stays on its node (docker service logs reads it)")
	}
	return out
}

func (s *Server) serviceUpdate(w http.ResponseWriter, r *http.Request) error {
	var d swarm.ServiceSpec
	if err := readJSON(r, &d); err != nil {
		return err
	}
	version, err := queryVersion(r, "service")
	if err != nil {
		return err
	}
	ctx := r.Context()
	prev, err := s.cfg.Backend.GetService(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	switch rb := r.URL.Query().Get("rollback"); rb {
	case "":
	case "previous":
		if prev.Meta.Version != version {
			return fmt.Errorf("service %s is at version %d, the update was made at %d: %w", prev.ID, prev.Meta.Version, version, api.ErrConflict)
		}
		if prev.PreviousSpec == nil {
			return errInvalid(fmt.Errorf("service %s does not have a previous spec", prev.ID))
		}
		if _, err := s.cfg.Backend.RollbackService(ctx, prev.ID); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, swarm.ServiceUpdateResponse{})
	default:
		return errInvalid(fmt.Errorf("unrecognized rollback option %s", rb))
	}
	if d.Name != prev.Spec.Name {
		// Docker's answer (swarmkit's Unimplemented): a service's name is
		// how stacks, DNS and the CLI find it.
		return errNotImplemented(fmt.Errorf("renaming services is not supported (service %s is %q, the update names it %q)", prev.ID, prev.Spec.Name, d.Name))
	}
	spec, err := specFromDocker(d, &prev.Spec)
	if err != nil {
		return errInvalid(err)
	}
	if _, err := s.cfg.Backend.UpdateService(ctx, prev.ID, version, spec); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, swarm.ServiceUpdateResponse{Warnings: warnings(d)})
}

func (s *Server) serviceRemove(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Backend.RemoveService(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
