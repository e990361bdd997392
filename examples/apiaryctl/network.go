package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
)

func (c *cli) networkCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Manage networks"}
	cmd.AddCommand(c.networkCreate(), c.networkLs(), c.networkInspect(), c.networkRm())
	return cmd
}

// networkFlags are the flags of `network create`, as docker's.
type networkFlags struct {
	driver, subnet, gateway         string
	labels                          []string
	internal, attachable, isIngress bool
}

// spec builds the network's spec; an error names the flag. The cluster
// checks the rest (names, subnets), naming the field.
func (f *networkFlags) spec(name string) (api.NetworkSpec, error) {
	s := api.NetworkSpec{Annotations: api.Annotations{Name: name}, Driver: f.driver,
		Internal: f.internal, Attachable: f.attachable, Ingress: f.isIngress}
	for _, l := range f.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return s, fmt.Errorf("--label %q: want K=V", l)
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
	if f.gateway != "" && f.subnet == "" {
		return s, errors.New("--gateway: needs --subnet")
	}
	if f.subnet != "" {
		s.IPAM = &api.IPAMConfig{Subnet: f.subnet, Gateway: f.gateway}
	}
	return s, nil
}

func (c *cli) networkCreate() *cobra.Command {
	var f networkFlags
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := f.spec(args[0])
			if err != nil {
				return err
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			n, err := cl.CreateNetwork(ctx, spec)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, n.ID)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.driver, "driver", "d", api.DriverOverlay, "network driver")
	fs.StringArrayVar(&f.labels, "label", nil, "network label K=V (repeatable)")
	fs.StringVar(&f.subnet, "subnet", "", "IPv4 subnet in CIDR form, e.g. 10.20.0.0/24 (default: the next free one of the cluster's address pool)")
	fs.StringVar(&f.gateway, "gateway", "", "the subnet's gateway (default: its first address)")
	fs.BoolVar(&f.internal, "internal", false, "no route outside the cluster")
	fs.BoolVar(&f.attachable, "attachable", false, "stand-alone containers may attach")
	fs.BoolVar(&f.isIngress, "ingress", false, "the routing mesh's network (one per cluster)")
	return cmd
}

// parseNetworkFilters reads --filter name=..., id=..., label=...[=...].
func parseNetworkFilters(filters []string) (control.NetworkFilter, error) {
	var f control.NetworkFilter
	for _, s := range filters {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return f, fmt.Errorf("--filter %q: want KEY=VALUE", s)
		}
		switch k {
		case "name":
			f.Names = append(f.Names, v)
		case "id":
			f.IDs = append(f.IDs, v)
		case "label":
			f.Labels = append(f.Labels, v)
		default:
			return f, fmt.Errorf("--filter %q: unknown key %q (want name, id or label)", s, k)
		}
	}
	return f, nil
}

func (c *cli) networkLs() *cobra.Command {
	return listCmd(c, "network", (*client.Client).ListNetworks, func(n *api.Network) string { return short(n.ID) },
		[]string{"NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET"}, func(n *api.Network) string {
			subnet := ""
			if n.IPAM != nil {
				subnet = n.IPAM.Subnet
			}
			return fmt.Sprintf("%s\t%s\t%s\tswarm\t%s", short(n.ID), n.Spec.Name, n.Spec.Driver, subnet)
		})
}

func (c *cli) networkInspect() *cobra.Command {
	return inspectCmd(c, "inspect NETWORK...", "Show networks in detail (JSON)", (*client.Client).GetNetwork)
}

func (c *cli) networkRm() *cobra.Command {
	return removeCmd(c, "rm NETWORK...", "Remove networks no service uses",
		func(cl *client.Client, ctx context.Context, ref string) error {
			_, err := cl.GetNetwork(ctx, ref)
			return err
		},
		(*client.Client).RemoveNetwork)
}

// networkIDs maps a network's name, ID or ID prefix to its ID, from the
// cluster's networks now; a reference to none maps to itself.
func networkIDs(ctx context.Context, cl *client.Client) (func(string) string, error) {
	nets, err := cl.ListNetworks(ctx, control.NetworkFilter{})
	if err != nil {
		return nil, err
	}
	return func(ref string) string {
		var byPrefix []string
		for _, n := range nets {
			if n.ID == ref || n.Spec.Name == ref {
				return n.ID
			}
			if strings.HasPrefix(n.ID, ref) {
				byPrefix = append(byPrefix, n.ID)
			}
		}
		if len(byPrefix) == 1 {
			return byPrefix[0]
		}
		return ref
	}, nil
}

func (c *cli) taskCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "task", Short: "Inspect tasks"}
	cmd.AddCommand(inspectCmd(c, "inspect TASK...", "Show tasks in detail, with their network addresses (JSON)", (*client.Client).GetTask))
	return cmd
}
