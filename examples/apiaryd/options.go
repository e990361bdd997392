package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/pflag"

	"github.com/apiary-io/apiary/swarm"
)

// Node options: what init and join are told about the node itself, which
// run must not forget. Every flag of nodeOptions.flags is registered on
// init, join and run alike, and all of them are saved together in
// D/apiaryd.json when init or join creates the node. run starts from the
// saved values; a flag given to run overrides its saved value and is saved
// in its place (a later plain run does the same, rather than silently
// going back), and the log says so. A flag added to nodeOptions.flags is
// thereby saved and honoured by run with nothing else to do; a flag that
// must not be saved (a secret, a one-off action, the data dir itself) is
// registered on its command alone.

// optionsFile holds the node options in the data dir.
const optionsFile = "apiaryd.json"

// nodeFlagAnnotation marks the flags of a command that are node options.
const nodeFlagAnnotation = "apiaryd/node-option"

type nodeOptions struct {
	listen, advertise, executor, hostname, logLevel string
	logFormat                                       string
	labels                                          []string
	// The routing mesh (swarm.MeshConfig).
	dataPath, gossipAddr, dnsAddr, ingressAddr, meshVIPs string
	// Go's profiler (debug.go).
	debugAddr string
	// The Docker Engine API (dockerapi.go).
	docker dockerAPIOptions
}

// flags returns the node options as a flag set bound to o, each flag
// marked as a node option.
func (o *nodeOptions) flags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("node options", pflag.ContinueOnError)
	fs.StringVar(&o.listen, "listen-addr", "", "address to listen on, HOST:PORT (required by init and join)")
	fs.StringVar(&o.advertise, "advertise-addr", "", "address other nodes reach this one at (default: the listen address)")
	fs.StringVar(&o.executor, "executor", "process", "how tasks run: process, docker or fake")
	fs.StringVar(&o.hostname, "hostname", "", "hostname the node reports (default: the machine's)")
	fs.StringArrayVar(&o.labels, "label", nil, "engine label k=v reported by this node (repeatable)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text (key=value) or json (one object a line, for log collectors)")
	fs.StringVar(&o.dataPath, "data-path", swarm.DataPathHost, `the routing mesh's data path: "host" (tasks share the node's network; a userspace balancer serves VIPs and published ports) or "none" (no mesh)`)
	fs.StringVar(&o.gossipAddr, "gossip-addr", "", "where the node gossips with the others, HOST:PORT (default: the listen host, port 7946)")
	fs.StringVar(&o.dnsAddr, "dns-addr", "", "where the node's DNS server answers service names, HOST:PORT (default: the listen host, port 8653)")
	fs.StringVar(&o.ingressAddr, "ingress-addr", "", "address the node accepts published ports on, e.g. 0.0.0.0 (default: the listen host)")
	fs.StringVar(&o.meshVIPs, "mesh-vips", "", `where services' VIPs answer: "range" (an address of 127.100.0.0/16 each; the default on Linux) or "loopback" (127.0.0.1 and a port per service port, which DNS SRV records give; the default elsewhere)`)
	fs.StringVar(&o.debugAddr, "debug-addr", "", "serve Go's profiler (net/http/pprof) on this loopback HOST:PORT (default: off)")
	o.docker.addFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		f.Annotations = map[string][]string{nodeFlagAnnotation: {"true"}}
	})
	return fs
}

// visitNodeFlags calls fn for each node option among flags.
func visitNodeFlags(flags *pflag.FlagSet, fn func(*pflag.Flag)) {
	flags.VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[nodeFlagAnnotation]; ok {
			fn(f)
		}
	})
}

// flagValue is a flag's value as saved: a list for a repeatable flag, a
// string otherwise.
func flagValue(f *pflag.Flag) any {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.GetSlice()
	}
	return f.Value.String()
}

// setFlagValue sets f from its saved form.
func setFlagValue(f *pflag.Flag, raw json.RawMessage) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		return sv.Replace(list)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	return f.Value.Set(s)
}

// saveNodeOptions writes every node option of flags to dir/apiaryd.json
// (mode 0600, replaced atomically).
func saveNodeOptions(dir string, flags *pflag.FlagSet) error {
	out := map[string]any{}
	visitNodeFlags(flags, func(f *pflag.Flag) { out[f.Name] = flagValue(f) })
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, optionsFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save node options: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save node options: %w", err)
	}
	return nil
}

// optionNote is something run has to say about an option: an override,
// an option not saved by an older apiaryd, a saved one no longer known.
type optionNote struct {
	msg, flag, saved string
	now              any
}

// loadNodeOptions sets every node option of flags that run was not given
// from dir/apiaryd.json, and returns what the log should say. The caller
// saves the result once checked (run's overrides included).
func loadNodeOptions(dir string, flags *pflag.FlagSet) ([]optionNote, error) {
	path := filepath.Join(dir, optionsFile)
	saved := map[string]json.RawMessage{}
	var notes []optionNote
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		notes = append(notes, optionNote{msg: "no saved node options (the node was created by an older apiaryd): using the flags given and the defaults, saved from now on"})
	case err != nil:
		return nil, fmt.Errorf("node options: %w", err)
	default:
		if err := json.Unmarshal(b, &saved); err != nil {
			return nil, fmt.Errorf("node options %s: %w", path, err)
		}
	}
	var errs []error
	known := map[string]bool{}
	visitNodeFlags(flags, func(f *pflag.Flag) {
		known[f.Name] = true
		raw, ok := saved[f.Name]
		switch {
		case !ok:
			if len(saved) > 0 {
				notes = append(notes, optionNote{msg: "option not saved (the node was created by an older apiaryd): using the flag or its default", flag: f.Name, now: flagValue(f)})
			}
		case f.Changed:
			if now, _ := json.Marshal(flagValue(f)); !bytes.Equal(now, compact(raw)) {
				notes = append(notes, optionNote{msg: "flag overrides the saved option, and is saved for later runs", flag: f.Name, saved: string(compact(raw)), now: flagValue(f)})
			}
		default:
			if err := setFlagValue(f, raw); err != nil {
				errs = append(errs, fmt.Errorf("node options %s: --%s: %s: %w", path, f.Name, raw, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(saved) {
		if !known[name] {
			notes = append(notes, optionNote{msg: "saved option unknown to this apiaryd: ignored", flag: name, saved: string(compact(saved[name]))})
		}
	}
	return notes, nil
}

func compact(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// meshConfig is the node's routing mesh as the options say.
func (o *nodeOptions) meshConfig() (swarm.MeshConfig, error) {
	switch o.dataPath {
	case swarm.DataPathHost:
		switch o.meshVIPs {
		case "", swarm.VIPsRange, swarm.VIPsLoopback:
		default:
			return swarm.MeshConfig{}, fmt.Errorf("--mesh-vips: %q is not %s or %s", o.meshVIPs, swarm.VIPsRange, swarm.VIPsLoopback)
		}
		return swarm.MeshConfig{DataPath: o.dataPath, GossipAddr: o.gossipAddr, DNSAddr: o.dnsAddr, IngressAddr: o.ingressAddr, VIPs: o.meshVIPs}, nil
	case "none":
		return swarm.MeshConfig{}, nil
	}
	return swarm.MeshConfig{}, fmt.Errorf("--data-path: %q is not host or none", o.dataPath)
}
