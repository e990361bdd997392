package main

import (
	"github.com/spf13/cobra"
)

func (c *cli) swarmCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "swarm", Short: "Manage the cluster"}
	inspect := &cobra.Command{
		Use:   "inspect",
		Short: "Show the cluster (JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.checkFormat(); err != nil {
				return err
			}
			cl, err := c.connect()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx()
			defer cancel()
			cluster, err := cl.GetCluster(ctx)
			if err != nil {
				return err
			}
			return c.printJSON(cluster)
		},
	}
	c.addFormat(inspect)
	cmd.AddCommand(inspect)
	return cmd
}
