package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// Both of Docker's forms of --publish and --network, and their refusals,
// each naming the flag, the value and the key at fault.
func TestParsePublishAndNetwork(t *testing.T) {
	ingress := func(pub, target uint32, proto string) api.PortConfig {
		return api.PortConfig{PublishedPort: pub, TargetPort: target, Protocol: proto, PublishMode: api.PublishModeIngress}
	}
	for s, want := range map[string]api.PortConfig{
		"8080:80":     ingress(8080, 80, "tcp"),
		"8080:80/udp": ingress(8080, 80, "udp"),
		"80":          ingress(0, 80, "tcp"),
		"published=8080,target=80,protocol=tcp,mode=ingress": ingress(8080, 80, "tcp"),
		"published=53,target=53,protocol=udp,mode=host":      {PublishedPort: 53, TargetPort: 53, Protocol: "udp", PublishMode: "host"},
		"published=8080,target=80,proxy-protocol=v2,traffic-policy=local": {PublishedPort: 8080, TargetPort: 80, Protocol: "tcp",
			PublishMode: "ingress", ProxyProtocol: "v2", TrafficPolicy: "local"},
		"target=80": ingress(0, 80, "tcp"),
	} {
		got, err := parsePorts([]string{s})
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("--publish %s: %+v, %v; want %+v", s, got, err, want)
		}
	}
	for s, why := range map[string]string{
		"8080:80/http":                       `protocol must be tcp, udp or sctp, got "http"`,
		"8080:0":                             "target port must be 1-65535",
		"70000:80":                           "published port must be 0-65535",
		"published=8080":                     "target: required",
		"published=8080,target=80,mode=mesh": `mode: must be ingress or host, got "mesh"`,
		"target=80,target=81":                "target: given twice",
		"target=80,ip=1.2.3.4":               `unknown key "ip"`,
		"target=80,protocol=udp,proxy-protocol=v2": "proxy-protocol: only for tcp ports, not udp",
		"target=80,published":                      `"published": want key=value`,
	} {
		_, err := parsePorts([]string{s})
		if err == nil || !strings.HasPrefix(err.Error(), `--publish "`+s+`": `) || !strings.Contains(err.Error(), why) {
			t.Errorf("--publish %s: %v; want an error naming the flag, the value and %s", s, err, why)
		}
	}
	for s, want := range map[string]api.NetworkAttachmentConfig{
		"app":                           {Target: "app"},
		"name=app":                      {Target: "app"},
		"name=app,alias=db":             {Target: "app", Aliases: []string{"db"}},
		"target=app,alias=db,alias=sql": {Target: "app", Aliases: []string{"db", "sql"}},
	} {
		got, err := parseNetworks("network", []string{s})
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Errorf("--network %s: %+v, %v; want %+v", s, got, err, want)
		}
	}
	for s, why := range map[string]string{
		"":                    "want NAME or name=NAME",
		"app,db":              "want NAME or name=NAME",
		"alias=db":            "name: required",
		"name=app,name=db":    "name: given twice",
		"name=app,driver=x":   `unknown key "driver"`,
		"name=app,alias=":     `"alias=": want key=value with a value`,
		"name=app,alias=db,x": `"x": want key=value`,
	} {
		_, err := parseNetworks("network", []string{s})
		if err == nil || !strings.HasPrefix(err.Error(), `--network "`+s+`": `) || !strings.Contains(err.Error(), why) {
			t.Errorf("--network %q: %v; want an error naming the flag, the value and %s", s, err, why)
		}
	}
}
