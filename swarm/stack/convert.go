package stack

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/apiary-io/apiary/swarm/api"
)

// Docker's stack labels: every object of a stack carries the namespace;
// a service also the image as the file gave it.
const (
	LabelNamespace = "com.docker.stack.namespace"
	LabelImage     = "com.docker.stack.image"
)

// defaultNetwork is the network of services that name none.
const defaultNetwork = "default"

// Stack is what a compose file makes, ready for the control API: the
// objects to create or update (named NAME_x unless the file names them)
// and the external ones that must exist already.
type Stack struct {
	Name     string
	Networks []api.NetworkSpec
	Secrets  []api.SecretSpec
	Configs  []api.ConfigSpec
	Services []api.ServiceSpec
	// External objects are referenced by name and never created,
	// updated or removed.
	ExternalNetworks, ExternalSecrets, ExternalConfigs []string
}

// ReadFile reads a secret's or config's file (os.ReadFile by default).
type ReadFile func(path string) ([]byte, error)

// Convert maps a loaded project onto the stack's objects. Sources of
// secrets and configs are read through read (nil: os.ReadFile); each
// is bounded by the API's size limit. Fields that cannot be mapped were
// reported by Load; values that are wrong here are errors naming the
// service and field.
func Convert(p *types.Project, name string, read ReadFile) (*Stack, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if read == nil {
		read = os.ReadFile
	}
	st := &Stack{Name: name}
	ns := func(key, explicit string) string {
		if explicit != "" && explicit != name+"_"+key {
			return explicit
		}
		return name + "_" + key
	}
	// As docker stack, only the networks services use are made or
	// checked.
	used := map[string]bool{}
	for _, svc := range p.Services {
		if len(svc.Networks) == 0 {
			used[defaultNetwork] = true
		}
		for k := range svc.Networks {
			used[k] = true
		}
	}
	netNames := map[string]string{}
	for _, key := range sortedKeys(p.Networks) {
		n := p.Networks[key]
		if !used[key] {
			continue
		}
		if n.External {
			netNames[key] = orKey(n.Name, key)
			st.ExternalNetworks = append(st.ExternalNetworks, netNames[key])
			continue
		}
		spec := api.NetworkSpec{Annotations: api.Annotations{Name: ns(key, n.Name), Labels: withNamespace(n.Labels, name)},
			Driver: orKey(n.Driver, api.DriverOverlay), Internal: n.Internal, Attachable: n.Attachable}
		if len(n.Ipam.Config) > 1 {
			return nil, fmt.Errorf("networks.%s.ipam.config: %d pools, at most one", key, len(n.Ipam.Config))
		}
		if len(n.Ipam.Config) == 1 && n.Ipam.Config[0] != nil {
			spec.IPAM = &api.IPAMConfig{Subnet: n.Ipam.Config[0].Subnet, Gateway: n.Ipam.Config[0].Gateway}
		}
		netNames[key] = spec.Name
		st.Networks = append(st.Networks, spec)
	}
	secretNames := map[string]string{}
	for _, key := range sortedKeys(p.Secrets) {
		s := types.FileObjectConfig(p.Secrets[key])
		if s.External {
			secretNames[key] = orKey(s.Name, key)
			st.ExternalSecrets = append(st.ExternalSecrets, secretNames[key])
			continue
		}
		data, err := objectData("secrets."+key, s, p.Environment, read, api.MaxSecretSize)
		if err != nil {
			return nil, err
		}
		secretNames[key] = ns(key, s.Name)
		st.Secrets = append(st.Secrets, api.SecretSpec{Annotations: api.Annotations{Name: secretNames[key], Labels: withNamespace(s.Labels, name)}, Data: data})
	}
	configNames := map[string]string{}
	for _, key := range sortedKeys(p.Configs) {
		c := types.FileObjectConfig(p.Configs[key])
		if c.External {
			configNames[key] = orKey(c.Name, key)
			st.ExternalConfigs = append(st.ExternalConfigs, configNames[key])
			continue
		}
		data, err := objectData("configs."+key, c, p.Environment, read, api.MaxConfigSize)
		if err != nil {
			return nil, err
		}
		configNames[key] = ns(key, c.Name)
		st.Configs = append(st.Configs, api.ConfigSpec{Annotations: api.Annotations{Name: configNames[key], Labels: withNamespace(c.Labels, name)}, Data: data})
	}
	volumeNames := map[string]string{}
	for key, v := range p.Volumes {
		if v.External {
			volumeNames[key] = orKey(v.Name, key)
		} else {
			volumeNames[key] = ns(key, v.Name)
		}
	}
	refs := names{networks: netNames, secrets: secretNames, configs: configNames, volumes: volumeNames}
	for _, key := range sortedKeys(p.Services) {
		spec, err := convertService(name, p.Services[key], refs)
		if err != nil {
			return nil, fmt.Errorf("services.%s.%w", key, err)
		}
		st.Services = append(st.Services, spec)
	}
	return st, nil
}

// names map a file's keys to the objects' names in the cluster.
type names struct{ networks, secrets, configs, volumes map[string]string }

// objectData is a secret's or config's content: its file, an environment
// variable, or inline content.
func objectData(field string, o types.FileObjectConfig, env types.Mapping, read ReadFile, limit int) ([]byte, error) {
	var data []byte
	switch {
	case o.File != "":
		b, err := read(o.File)
		if err != nil {
			return nil, fmt.Errorf("%s.file: %w", field, err)
		}
		data = b
	case o.Environment != "":
		v, ok := env[o.Environment]
		if !ok {
			return nil, fmt.Errorf("%s.environment: variable %s is not set", field, o.Environment)
		}
		data = []byte(v)
	case o.Content != "":
		data = []byte(o.Content)
	default:
		return nil, fmt.Errorf("%s: neither file, environment, content nor external", field)
	}
	if len(data) == 0 || len(data) > limit {
		return nil, fmt.Errorf("%s: %d bytes, want 1 to %d", field, len(data), limit)
	}
	return data, nil
}

// withNamespace copies labels and adds the stack's namespace.
func withNamespace(labels map[string]string, name string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[LabelNamespace] = name
	return out
}

func orKey(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func sortedKeys[V any](m map[string]V) []string {
	keys := slices.Collect(maps.Keys(m))
	sort.Strings(keys)
	return keys
}
