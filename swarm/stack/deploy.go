package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
)

// Deployed says what Deploy did, object by object, for the CLI to print
// as docker stack deploy does.
type Deployed struct {
	Created, Updated, Removed []string
	// Kept are secrets that existed: their data is never read back, so a
	// redeploy keeps them (apiaryctl secret update makes a new version).
	Kept []string
}

// Deploy creates what the stack lacks and updates what it has: external
// objects must exist first (nothing is written otherwise); then
// networks, secrets and configs, then services (an existing one updated
// at the version read, keeping what another API layer kept beside its
// spec). With prune, services of the namespace the file no longer has
// are removed.
func Deploy(ctx context.Context, c control.API, st *Stack, prune bool) (*Deployed, error) {
	for _, n := range st.ExternalNetworks {
		if _, err := c.GetNetwork(ctx, n); err != nil {
			return nil, fmt.Errorf("external network %q: %w", n, err)
		}
	}
	for _, s := range st.ExternalSecrets {
		if _, err := c.GetSecret(ctx, s); err != nil {
			return nil, fmt.Errorf("external secret %q: %w", s, err)
		}
	}
	for _, s := range st.ExternalConfigs {
		if _, err := c.GetConfig(ctx, s); err != nil {
			return nil, fmt.Errorf("external config %q: %w", s, err)
		}
	}
	out := &Deployed{}
	for _, n := range st.Networks {
		_, err := c.GetNetwork(ctx, n.Name)
		if err == nil {
			continue // a network's spec cannot change in place
		}
		if !errors.Is(err, api.ErrNotFound) {
			return out, fmt.Errorf("network %s: %w", n.Name, err)
		}
		if _, err := c.CreateNetwork(ctx, n); err != nil {
			return out, fmt.Errorf("network %s: %w", n.Name, err)
		}
		out.Created = append(out.Created, "network "+n.Name)
	}
	for _, s := range st.Secrets {
		_, err := c.GetSecret(ctx, s.Name)
		if err == nil {
			out.Kept = append(out.Kept, "secret "+s.Name)
			continue
		}
		if !errors.Is(err, api.ErrNotFound) {
			return out, fmt.Errorf("secret %s: %w", s.Name, err)
		}
		if _, err := c.CreateSecret(ctx, s); err != nil {
			return out, fmt.Errorf("secret %s: %w", s.Name, err)
		}
		out.Created = append(out.Created, "secret "+s.Name)
	}
	for _, cf := range st.Configs {
		cur, err := c.GetConfig(ctx, cf.Name)
		switch {
		case err == nil && bytes.Equal(cur.Spec.Data, cf.Data):
			continue
		case err == nil:
			// A new version, which rolls out to the services using it.
			if _, err := c.UpdateConfig(ctx, cf.Name, cf); err != nil {
				return out, fmt.Errorf("config %s: %w", cf.Name, err)
			}
			out.Updated = append(out.Updated, "config "+cf.Name)
		case errors.Is(err, api.ErrNotFound):
			if _, err := c.CreateConfig(ctx, cf); err != nil {
				return out, fmt.Errorf("config %s: %w", cf.Name, err)
			}
			out.Created = append(out.Created, "config "+cf.Name)
		default:
			return out, fmt.Errorf("config %s: %w", cf.Name, err)
		}
	}
	existing, err := Services(ctx, c, st.Name)
	if err != nil {
		return out, err
	}
	byName := map[string]*api.Service{}
	for _, s := range existing {
		byName[s.Spec.Name] = s
	}
	want := map[string]bool{}
	for _, spec := range st.Services {
		want[spec.Name] = true
		cur, ok := byName[spec.Name]
		if !ok {
			if _, err := c.CreateService(ctx, spec); err != nil {
				return out, fmt.Errorf("service %s: %w", spec.Name, err)
			}
			out.Created = append(out.Created, "service "+spec.Name)
			continue
		}
		spec.Extensions = cur.Spec.Extensions
		if _, err := c.UpdateService(ctx, cur.ID, cur.Meta.Version, spec); err != nil {
			return out, fmt.Errorf("service %s: %w", spec.Name, err)
		}
		out.Updated = append(out.Updated, "service "+spec.Name)
	}
	if prune {
		for _, s := range existing {
			if want[s.Spec.Name] {
				continue
			}
			if err := c.RemoveService(ctx, s.ID); err != nil && !errors.Is(err, api.ErrNotFound) {
				return out, fmt.Errorf("prune service %s: %w", s.Spec.Name, err)
			}
			out.Removed = append(out.Removed, "service "+s.Spec.Name)
		}
	}
	return out, nil
}

// inStack reports whether labels put an object in the stack.
func inStack(labels map[string]string, name string) bool { return labels[LabelNamespace] == name }

// namespaceFilter lists the objects of a stack.
func namespaceFilter(name string) control.ObjectFilter {
	return control.ObjectFilter{Labels: []string{LabelNamespace + "=" + name}}
}

// Services returns the stack's services, by name.
func Services(ctx context.Context, c control.API, name string) ([]*api.Service, error) {
	all, err := c.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	var out []*api.Service
	for _, s := range all {
		if inStack(s.Spec.Labels, name) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

// Summary is a stack as stack ls shows it.
type Summary struct {
	Name     string
	Services int
}

// List returns every stack that has a service, by name (as docker stack
// ls, which looks at services only).
func List(ctx context.Context, c control.API) ([]Summary, error) {
	all, err := c.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	count := map[string]int{}
	for _, s := range all {
		if ns, ok := s.Spec.Labels[LabelNamespace]; ok {
			count[ns]++
		}
	}
	out := make([]Summary, 0, len(count))
	for _, n := range sortedKeys(count) {
		out = append(out, Summary{Name: n, Services: count[n]})
	}
	return out, nil
}

// Remove removes the stack's services, then its secrets, configs and
// networks (external ones are not the stack's: they carry no label). It
// goes on past a failure and returns every error; it is an error for a
// stack to have nothing.
func Remove(ctx context.Context, c control.API, name string) ([]string, error) {
	var removed []string
	var errs []error
	services, err := Services(ctx, c, name)
	if err != nil {
		return nil, err
	}
	for _, s := range services {
		if err := c.RemoveService(ctx, s.ID); err != nil && !errors.Is(err, api.ErrNotFound) {
			errs = append(errs, fmt.Errorf("service %s: %w", s.Spec.Name, err))
			continue
		}
		removed = append(removed, "service "+s.Spec.Name)
	}
	secrets, err := c.ListSecrets(ctx, namespaceFilter(name))
	if err != nil {
		return removed, err
	}
	for _, s := range secrets {
		if err := c.RemoveSecret(ctx, s.ID); err != nil && !errors.Is(err, api.ErrNotFound) {
			errs = append(errs, fmt.Errorf("secret %s: %w", s.Spec.Name, err))
			continue
		}
		removed = append(removed, "secret "+s.Spec.Name)
	}
	configs, err := c.ListConfigs(ctx, namespaceFilter(name))
	if err != nil {
		return removed, err
	}
	for _, cf := range configs {
		if err := c.RemoveConfig(ctx, cf.ID); err != nil && !errors.Is(err, api.ErrNotFound) {
			errs = append(errs, fmt.Errorf("config %s: %w", cf.Spec.Name, err))
			continue
		}
		removed = append(removed, "config "+cf.Spec.Name)
	}
	networks, err := c.ListNetworks(ctx, namespaceFilter(name))
	if err != nil {
		return removed, err
	}
	for _, n := range networks {
		if err := c.RemoveNetwork(ctx, n.ID); err != nil && !errors.Is(err, api.ErrNotFound) {
			errs = append(errs, fmt.Errorf("network %s: %w", n.Spec.Name, err))
			continue
		}
		removed = append(removed, "network "+n.Spec.Name)
	}
	if len(removed) == 0 && len(errs) == 0 {
		return nil, fmt.Errorf("nothing found in stack: %s", name)
	}
	return removed, errors.Join(errs...)
}
