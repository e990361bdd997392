package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/client"
)

func (c *cli) nodeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Manage nodes"}
	cmd.AddCommand(c.nodeLs(), c.nodePs(), c.nodeInspect(), c.nodeUpdate(), c.nodeRole("promote", api.NodeRoleManager),
		c.nodeRole("demote", api.NodeRoleWorker), c.nodeRm())
	return cmd
}

func (c *cli) nodeInspect() *cobra.Command {
	cmd := inspectCmd(c, "inspect NODE...", "Show nodes in detail (JSON), a manager's scheduler plugins included", (*client.Client).GetNode)
	cmd.Flags().BoolVar(&c.pretty, "pretty", false, "print the nodes in a human-friendly format")
	json := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !c.pretty {
			return json(cmd, args)
		}
		if c.format == "json" {
			return fmt.Errorf("--pretty and --format json: choose one")
		}
		cl, ctx, cancel, err := c.session()
		if err != nil {
			return err
		}
		defer cancel()
		// As with JSON, nothing is printed if any node is unknown.
		nodes := make([]*api.Node, 0, len(args))
		for _, ref := range args {
			n, err := cl.GetNode(ctx, ref)
			if err != nil {
				return err
			}
			nodes = append(nodes, n)
		}
		for i, n := range nodes {
			if i > 0 {
				fmt.Fprintln(c.out)
			}
			if err := printNode(c.out, n); err != nil {
				return err
			}
		}
		return nil
	}
	return cmd
}

func (c *cli) nodeUpdate() *cobra.Command {
	var avail string
	var add, rm []string
	cmd := &cobra.Command{
		Use:   "update [--availability active|pause|drain] [--label-add K=V]... [--label-rm K]... NODE",
		Short: "Change a node's availability or labels",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set := map[string]string{}
			for _, l := range add {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label-add %q: want K=V", l)
				}
				set[k] = v
			}
			return c.editNode(args[0], func(spec *api.NodeSpec) error {
				if cmd.Flags().Changed("availability") {
					spec.Availability = api.NodeAvailability(avail)
				}
				if spec.Labels == nil && len(set) > 0 {
					spec.Labels = map[string]string{}
				}
				for k, v := range set {
					spec.Labels[k] = v
				}
				for _, k := range rm {
					if _, ok := spec.Labels[k]; !ok {
						return fmt.Errorf("--label-rm %q: the node has no such label", k)
					}
					delete(spec.Labels, k)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&avail, "availability", "", "active, pause or drain")
	cmd.Flags().StringArrayVar(&add, "label-add", nil, "add or change a label K=V (repeatable)")
	cmd.Flags().StringArrayVar(&rm, "label-rm", nil, "remove a label (repeatable)")
	return cmd
}

func (c *cli) nodeRole(use string, role api.NodeRole) *cobra.Command {
	return &cobra.Command{
		Use:   use + " NODE...",
		Short: "Make nodes " + string(role) + "s",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, ref := range args {
				if err := c.editNode(ref, func(spec *api.NodeSpec) error { spec.Role = role; return nil }); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// editNode reads a node, changes its spec and writes it back at the version
// read.
func (c *cli) editNode(ref string, edit func(*api.NodeSpec) error) error {
	cl, ctx, cancel, err := c.session()
	if err != nil {
		return err
	}
	defer cancel()
	n, err := cl.EditNode(ctx, ref, edit)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.out, n.ID)
	return nil
}

func (c *cli) nodeRm() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [--force] NODE...",
		Short: "Remove nodes from the cluster",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			for _, ref := range args {
				if err := cl.RemoveNode(ctx, ref, force); err != nil {
					return err
				}
				fmt.Fprintln(c.out, ref)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove a node that is still up")
	return cmd
}

func hostname(n *api.Node) string {
	if n.Description != nil {
		return n.Description.Hostname
	}
	return n.Spec.Name
}

func hostnames(ctx context.Context, cl *client.Client) map[string]string {
	out := map[string]string{}
	nodes, err := cl.ListNodes(ctx)
	if err != nil {
		return out
	}
	for _, n := range nodes {
		out[n.ID] = hostname(n)
	}
	return out
}
