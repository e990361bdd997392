package main

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/apiary-io/apiary/internal/bytesize"
	"github.com/apiary-io/apiary/swarm/api"
)

// Fuzz targets of the CLI's own parsers: sizes, CPUs, published ports, and
// the service flags as a whole (durations included) down to the spec sent
// to the cluster.

// FuzzParseBytes: a refused size gets an error naming the flag; an
// accepted one is a byte count an int64 holds, never negative (a minus sign
// is accepted only for zero), whose decimal form reads back to the same
// count and whose printed form (as scheduler explanations show it) reads
// back to it within its four significant digits and the byte a dropped
// fraction loses (below 1 EiB: Docker's sizes have no unit e).
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"512M", "1G", "2g", "256MiB", "1.5GB", "0", "100", "4k", "1t", "1p", " 64 m ", "-1M", "-0", "M", "", "NaN", "Inf", "1e30g", "8192p", "0x10", "0x1p4k", "9223372036854775807", "9223372036854774784", "1220"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseBytes("limit-memory", s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--limit-memory ") {
				t.Fatalf("parseBytes(%q): error %q does not name the flag", s, err)
			}
			return
		}
		if v < 0 || (v != 0 && strings.HasPrefix(strings.TrimSpace(s), "-")) {
			t.Fatalf("parseBytes(%q) = %d, from a negative size", s, v)
		}
		if back, err := parseBytes("limit-memory", strconv.FormatInt(v, 10)); err != nil || back != v {
			t.Fatalf("parseBytes(%q) = %d, whose decimal form parses to %d, %v", s, v, back, err)
		}
		if v >= 1<<60 {
			return
		}
		text := bytesize.Format(v)
		back, err := parseBytes("limit-memory", text)
		if err != nil || math.Abs(float64(back-v)) > 5e-4*float64(v)+1 {
			t.Fatalf("parseBytes(%q) = %d, printed %q parses to %d, %v", s, v, text, back, err)
		}
	})
}

// FuzzParseCPUs: an accepted CPU count is a non-negative number of
// nano-CPUs, and its decimal form in CPUs reads back to it (up to a
// million CPUs, where float64 still holds every nano-CPU).
func FuzzParseCPUs(f *testing.F) {
	for _, s := range []string{"0.5", "1", "2.25", "0", "0.001", "1e-12", "-1", "NaN", "Inf", "1e300", "", "one"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseCPUs(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("parseCPUs(%q) = %d nano-CPUs", s, v)
		}
		if v > 1e15 {
			return // beyond a million CPUs float64 no longer holds every nano-CPU
		}
		text := strconv.FormatFloat(float64(v)/1e9, 'f', -1, 64)
		if back, err := parseCPUs(text); err != nil || back != v {
			t.Fatalf("parseCPUs(%q) = %d, whose form %q parses to %d, %v", s, v, text, back, err)
		}
	})
}

// FuzzParsePorts: an accepted --publish, in either form, gives ports in
// range, that print back (in the long form) to a flag giving the same
// ports.
func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"80", "8080:80", "53:53/udp", "0:80/tcp", "80/sctp", ":80", "8080:", "65536", "0", "-1:80", "80/", "a:b/c", "1:2:3",
		"published=8080,target=80", "published=8080,target=80,protocol=udp,mode=host", "target=80,proxy-protocol=v2,traffic-policy=local",
		"published=8080", "target=80,target=81", "target=80,proxy-protocol=v2,protocol=udp", "target=80,x=1", "target=0", "published=,target=80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ports, err := parsePorts([]string{s})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--publish ") {
				t.Fatalf("parsePorts(%q): error %q does not name the flag", s, err)
			}
			return
		}
		if len(ports) != 1 {
			t.Fatalf("parsePorts(%q) gave %d ports", s, len(ports))
		}
		p := ports[0]
		if p.TargetPort < 1 || p.TargetPort > 65535 || p.PublishedPort > 65535 {
			t.Fatalf("parsePorts(%q) = %+v, out of range", s, p)
		}
		if (p.ProxyProtocol != "" && p.Protocol != api.PortProtocolTCP) || p.PublishMode == "" || p.Protocol == "" {
			t.Fatalf("parsePorts(%q) = %+v: a port the cluster refuses or leaves to defaults", s, p)
		}
		text := formatPort(p)
		back, err := parsePorts([]string{text})
		if err != nil || len(back) != 1 || back[0] != p {
			t.Fatalf("parsePorts(%q) = %+v, printed %q parses to %+v, %v", s, p, text, back, err)
		}
	})
}

// FuzzServiceFlags parses service create and update flags (args separated
// by newlines) as apiaryctl does and applies them to a spec. An error names
// the flag; otherwise the sizes, CPUs and durations given arrive in the
// spec as parsed, never negative for sizes and CPUs, and the spec then
// validates (with its defaults, as the control API does) without panicking
// into a well-formed error.
func FuzzServiceFlags(f *testing.F) {
	for _, s := range []string{
		"--name\nweb\n--replicas\n3\n--reserve-memory\n256M\n--limit-memory\n1G\n--reserve-cpu\n0.5",
		"--name=web\n--update-delay=10s\n--update-monitor=1m30s\n--update-parallelism=2\n--stop-grace-period=2s",
		"--name=w\n--restart-delay=-5s\n--restart-condition=on-failure\n--restart-max-attempts=3",
		"--name=w\n--mode=global\n--constraint=node.labels.zone==a\n--publish=8080:80\n--env=A=1\n--label=tier=front",
		"--name=w\n--image=nginx:1.27\n--limit-cpu=NaN\n--reserve-memory=1e30g",
		"--name=w\n--update-delay=1h1m1.5s\n--update-order=start-first\n--update-failure-action=rollback",
		"--name=w\n--mode=replicated-job",
		"--replicas=-1\n--update-delay=9223372036s",
		"--name=w\n--network=app\n--network=name=db,alias=x,alias=y\n-p\npublished=8080,target=80,mode=host\n--endpoint-mode=dnsrr",
		"--network-add=name=db,alias=x\n--network-rm=app\n--publish-add=8080:80\n--publish-rm=9090/udp\n--endpoint-mode=vip",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, argv string, create bool) {
		var fl serviceFlags
		fs := pflag.NewFlagSet("service", pflag.ContinueOnError)
		fs.SetOutput(nopWriter{})
		fl.register(fs, create)
		if err := fs.Parse(strings.Split(argv, "\n")); err != nil {
			return
		}
		spec := api.ServiceSpec{}
		if !create {
			spec = existingSpec()
		}
		if err := fl.apply(&spec, fs.Changed, []string{"/bin/app"}, create); err != nil {
			if !strings.HasPrefix(err.Error(), "--") {
				t.Fatalf("apply(%q): error %q does not name the flag", argv, err)
			}
			return
		}
		res := spec.TaskTemplate.Resources
		for _, c := range []struct {
			flag string
			got  func() int64
		}{
			{"reserve-memory", func() int64 { return res.Reservations.MemoryBytes }},
			{"limit-memory", func() int64 { return res.Limits.MemoryBytes }},
			{"reserve-cpu", func() int64 { return res.Reservations.NanoCPUs }},
			{"limit-cpu", func() int64 { return res.Limits.NanoCPUs }},
		} {
			if fs.Changed(c.flag) && c.got() < 0 {
				t.Fatalf("apply(%q): --%s became %d", argv, c.flag, c.got())
			}
		}
		u := spec.UpdateConfig
		for _, c := range []struct {
			flag string
			want time.Duration
			got  func() time.Duration
		}{
			{"update-delay", fl.updDelay, func() time.Duration { return u.Delay }},
			{"update-monitor", fl.updMonitor, func() time.Duration { return u.Monitor }},
			{"restart-delay", fl.restartDelay, func() time.Duration { return *spec.TaskTemplate.RestartPolicy.Delay }},
			{"stop-grace-period", fl.stopGrace, func() time.Duration { return spec.TaskTemplate.StopGracePeriod() }},
		} {
			if fs.Changed(c.flag) && c.got() != c.want {
				t.Fatalf("apply(%q): --%s=%s became %s", argv, c.flag, c.want, c.got())
			}
		}
		spec.ApplyDefaults()
		if err := spec.Validate(); err != nil && len(api.ValidationErrors(err)) == 0 {
			t.Fatalf("apply(%q): validation error %q names no field", argv, err)
		}
	})
}

// existingSpec is what `service update` starts from: a service as the
// cluster returns it.
func existingSpec() api.ServiceSpec {
	s := api.ServiceSpec{
		Annotations:  api.Annotations{Name: "web"},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 2}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"/bin/app"}}},
	}
	s.ApplyDefaults()
	return s
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
