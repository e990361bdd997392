package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// The service flags of networking: --network (create), --network-add and
// --network-rm (update), -p/--publish in both of Docker's forms,
// --publish-add and --publish-rm (update), --endpoint-mode.

// applyEndpoint writes --endpoint-mode and the --publish flags into spec.
// --publish on update replaces every port; --publish-rm removes those it
// names, then --publish-add adds (replacing a port of the same published
// port and protocol), as docker service update does.
func (f *serviceFlags) applyEndpoint(spec *api.ServiceSpec, changed func(string) bool) error {
	if !anyChanged(changed, "endpoint-mode", "publish", "publish-add", "publish-rm") {
		return nil
	}
	if spec.EndpointSpec == nil {
		spec.EndpointSpec = &api.EndpointSpec{}
	}
	ep := spec.EndpointSpec
	if changed("endpoint-mode") {
		if f.endpointMode != api.ResolutionModeVIP && f.endpointMode != api.ResolutionModeDNSRR {
			return fmt.Errorf("--endpoint-mode: %q is not vip or dnsrr", f.endpointMode)
		}
		ep.Mode = f.endpointMode
	}
	if changed("publish") {
		ports, err := parsePortsFlag("publish", f.publish)
		if err != nil {
			return err
		}
		ep.Ports = ports
	}
	for _, s := range f.publishRm {
		port, proto, err := parsePortRef(s)
		if err != nil {
			return err
		}
		ep.Ports = slices.DeleteFunc(ep.Ports, func(p api.PortConfig) bool {
			return p.PublishedPort == port && protocolOf(p) == proto
		})
	}
	add, err := parsePortsFlag("publish-add", f.publishAdd)
	if err != nil {
		return err
	}
	for _, a := range add {
		ep.Ports = slices.DeleteFunc(ep.Ports, func(p api.PortConfig) bool {
			return a.PublishedPort != 0 && p.PublishedPort == a.PublishedPort && protocolOf(p) == a.Protocol
		})
		ep.Ports = append(ep.Ports, a)
	}
	return nil
}

func protocolOf(p api.PortConfig) string {
	if p.Protocol == "" {
		return api.PortProtocolTCP
	}
	return p.Protocol
}

// parsePorts reads --publish values.
func parsePorts(specs []string) ([]api.PortConfig, error) { return parsePortsFlag("publish", specs) }

// parsePortsFlag reads the values of a --publish flag: Docker's short form
// [PUBLISHED:]TARGET[/PROTOCOL] (ingress mode), or its long form of
// key=value pairs. An error names the flag and the value.
func parsePortsFlag(flag string, specs []string) ([]api.PortConfig, error) {
	var out []api.PortConfig
	for _, s := range specs {
		var p api.PortConfig
		var err error
		if strings.Contains(s, "=") {
			p, err = parseLongPort(s)
		} else {
			p, err = parseShortPort(s)
		}
		if err != nil {
			return nil, fmt.Errorf("--%s %q: %v", flag, s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseShortPort reads [PUBLISHED:]TARGET[/PROTOCOL].
func parseShortPort(s string) (api.PortConfig, error) {
	p := api.PortConfig{Protocol: api.PortProtocolTCP, PublishMode: api.PublishModeIngress}
	body, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		if !validProtocol(proto) {
			return p, fmt.Errorf("protocol must be tcp, udp or sctp, got %q", proto)
		}
		p.Protocol = proto
	}
	pub, target, hasPub := strings.Cut(body, ":")
	if !hasPub {
		target, pub = pub, ""
	}
	t, err := strconv.ParseUint(target, 10, 16)
	if err != nil || t == 0 {
		return p, fmt.Errorf("target port must be 1-65535")
	}
	p.TargetPort = uint32(t)
	if pub != "" {
		v, err := strconv.ParseUint(pub, 10, 16)
		if err != nil {
			return p, fmt.Errorf("published port must be 0-65535")
		}
		p.PublishedPort = uint32(v)
	}
	return p, nil
}

// parseLongPort reads Docker's long form, published=P,target=T,
// protocol=...,mode=..., with Apiary's proxy-protocol=v2 and
// traffic-policy=cluster|local.
func parseLongPort(s string) (api.PortConfig, error) {
	p := api.PortConfig{Protocol: api.PortProtocolTCP, PublishMode: api.PublishModeIngress}
	seen := map[string]bool{}
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok {
			return p, fmt.Errorf("%q: want key=value", field)
		}
		if seen[k] {
			return p, fmt.Errorf("%s: given twice", k)
		}
		seen[k] = true
		switch k {
		case "published":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return p, fmt.Errorf("published: must be a port 0-65535, got %q", v)
			}
			p.PublishedPort = uint32(n)
		case "target":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return p, fmt.Errorf("target: must be a port 1-65535, got %q", v)
			}
			p.TargetPort = uint32(n)
		case "protocol":
			if !validProtocol(v) {
				return p, fmt.Errorf("protocol: must be tcp, udp or sctp, got %q", v)
			}
			p.Protocol = v
		case "mode":
			if v != api.PublishModeIngress && v != api.PublishModeHost {
				return p, fmt.Errorf("mode: must be ingress or host, got %q", v)
			}
			p.PublishMode = v
		case "proxy-protocol":
			if v != api.ProxyProtocolV2 {
				return p, fmt.Errorf("proxy-protocol: must be v2, got %q", v)
			}
			p.ProxyProtocol = v
		case "traffic-policy":
			if v != api.TrafficPolicyCluster && v != api.TrafficPolicyLocal {
				return p, fmt.Errorf("traffic-policy: must be cluster or local, got %q", v)
			}
			p.TrafficPolicy = v
		default:
			return p, fmt.Errorf("unknown key %q (want published, target, protocol, mode, proxy-protocol or traffic-policy)", k)
		}
	}
	if p.TargetPort == 0 {
		return p, fmt.Errorf("target: required")
	}
	if p.ProxyProtocol != "" && p.Protocol != api.PortProtocolTCP {
		return p, fmt.Errorf("proxy-protocol: only for tcp ports, not %s", p.Protocol)
	}
	return p, nil
}

func validProtocol(s string) bool {
	return s == api.PortProtocolTCP || s == api.PortProtocolUDP || s == api.PortProtocolSCTP
}

// parsePortRef reads what --publish-rm names: PUBLISHED[/PROTOCOL] or
// published=PUBLISHED[,protocol=PROTOCOL] (a target given is ignored, as
// Docker matches on the published port).
func parsePortRef(s string) (uint32, string, error) {
	bad := func(why string) (uint32, string, error) {
		return 0, "", fmt.Errorf("--publish-rm %q: %s", s, why)
	}
	port, proto := "", api.PortProtocolTCP
	if strings.Contains(s, "=") {
		for _, field := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(field, "=")
			switch strings.TrimSpace(k) {
			case "published":
				port = v
			case "protocol":
				proto = v
			case "target", "mode":
			default:
				return bad(fmt.Sprintf("unknown key %q (want published, protocol)", k))
			}
		}
	} else {
		var hasProto bool
		var p string
		port, p, hasProto = strings.Cut(s, "/")
		if hasProto {
			proto = p
		}
		// docker accepts PUBLISHED:TARGET too: the published port counts.
		port, _, _ = strings.Cut(port, ":")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return bad("published port must be 1-65535")
	}
	if !validProtocol(proto) {
		return bad(fmt.Sprintf("protocol must be tcp, udp or sctp, got %q", proto))
	}
	return uint32(n), proto, nil
}

// applyNetworks writes --network (create) or --network-rm then
// --network-add (update) into the task template. Networks are named as
// the user wrote them: the cluster resolves them to IDs, and refuses one
// it does not know, naming it.
func (f *serviceFlags) applyNetworks(t *api.TaskSpec, changed func(string) bool) error {
	if changed("network") {
		nets, err := parseNetworks("network", f.networks)
		if err != nil {
			return err
		}
		t.Networks = nets
	}
	id := f.networkID
	if id == nil {
		id = func(s string) string { return s }
	}
	for _, rm := range f.networkRm {
		if rm == "" {
			return fmt.Errorf("--network-rm: empty network name")
		}
		before := len(t.Networks)
		t.Networks = slices.DeleteFunc(t.Networks, func(n api.NetworkAttachmentConfig) bool {
			return n.Target == rm || id(n.Target) == id(rm)
		})
		if len(t.Networks) == before {
			return fmt.Errorf("--network-rm %q: the service is not attached to that network", rm)
		}
	}
	add, err := parseNetworks("network-add", f.networkAdd)
	if err != nil {
		return err
	}
	for _, a := range add {
		if slices.ContainsFunc(t.Networks, func(n api.NetworkAttachmentConfig) bool { return id(n.Target) == id(a.Target) }) {
			return fmt.Errorf("--network-add %q: the service is attached to that network already", a.Target)
		}
		t.Networks = append(t.Networks, a)
	}
	return nil
}

// parseNetworks reads Docker's two forms of --network: NAME, or
// name=NAME[,alias=ALIAS...] (target= is name's other spelling).
func parseNetworks(flag string, specs []string) ([]api.NetworkAttachmentConfig, error) {
	var out []api.NetworkAttachmentConfig
	for _, s := range specs {
		n, err := parseNetwork(s)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: %v", flag, s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseNetwork(s string) (api.NetworkAttachmentConfig, error) {
	var n api.NetworkAttachmentConfig
	if !strings.Contains(s, "=") {
		if s == "" || strings.Contains(s, ",") {
			return n, fmt.Errorf("want NAME or name=NAME[,alias=ALIAS...]")
		}
		n.Target = s
		return n, nil
	}
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok || v == "" {
			return n, fmt.Errorf("%q: want key=value with a value", field)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "name", "target":
			if n.Target != "" {
				return n, fmt.Errorf("name: given twice")
			}
			n.Target = v
		case "alias":
			n.Aliases = append(n.Aliases, v)
		default:
			return n, fmt.Errorf("unknown key %q (want name or alias)", k)
		}
	}
	if n.Target == "" {
		return n, fmt.Errorf("name: required")
	}
	return n, nil
}

// formatPort writes a port in --publish's long form, which reads back to
// the same port.
func formatPort(p api.PortConfig) string {
	s := fmt.Sprintf("published=%d,target=%d,protocol=%s,mode=%s", p.PublishedPort, p.TargetPort, p.Protocol, p.PublishMode)
	if p.ProxyProtocol != "" {
		s += ",proxy-protocol=" + p.ProxyProtocol
	}
	if p.TrafficPolicy != "" {
		s += ",traffic-policy=" + p.TrafficPolicy
	}
	return s
}
