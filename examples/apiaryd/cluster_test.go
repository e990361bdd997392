package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// init's --default-addr-pool and --default-addr-pool-mask-length reach the
// cluster's spec, Docker's defaults when not given; bad ones are refused
// naming the flags and the field before anything starts.
func TestInitAddrPoolFlags(t *testing.T) {
	parse := func(args ...string) (clusterSettings, error) {
		var c clusterSettings
		fs := pflag.NewFlagSet("init", pflag.ContinueOnError)
		c.flags(fs)
		return c, fs.Parse(args)
	}
	c, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.spec()
	if err != nil || !reflect.DeepEqual(spec.Network.DefaultAddrPool, []string{"10.0.0.0/8"}) || spec.Network.SubnetSize != 24 {
		t.Fatalf("defaults: %+v, %v", spec.Network, err)
	}
	c, err = parse("--default-addr-pool", "10.10.0.0/16,10.20.0.0/16", "--default-addr-pool", "192.168.0.0/20", "--default-addr-pool-mask-length", "26")
	if err != nil {
		t.Fatal(err)
	}
	spec, err = c.spec()
	if err != nil || !reflect.DeepEqual(spec.Network.DefaultAddrPool, []string{"10.10.0.0/16", "10.20.0.0/16", "192.168.0.0/20"}) || spec.Network.SubnetSize != 26 {
		t.Fatalf("given: %+v, %v", spec.Network, err)
	}
	for _, args := range [][]string{
		{"--default-addr-pool", "10.0.0.0/8,10.1.0.0/16"},
		{"--default-addr-pool", "10.0.0.1/8"},
		{"--default-addr-pool-mask-length", "31"},
		{"--default-addr-pool", "192.168.0.0/25"},
	} {
		c, err := parse(args...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.spec(); err == nil || !strings.Contains(err.Error(), "--default-addr-pool") || !strings.Contains(err.Error(), "network.") {
			t.Errorf("%v: %v; want an error naming the flags and the field", args, err)
		}
	}
}
