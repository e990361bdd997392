package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
)

// dataUpdate is `secret update` / `config update`: a new version from a
// file or standard input. The services that use the secret roll to it by
// their update config; `service rollback` returns one to the version
// before.
func dataUpdate[T api.Object](c *cli, k dataCmds[T]) *cobra.Command {
	var labels []string
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] " + strings.ToUpper(k.kind) + " FILE|-",
		Short: "Make a new version of a " + k.kind + " from a file, or standard input with -, and roll the services using it to it",
		Long: "Makes a new version of the " + k.kind + " (a new ID; NAME@VERSION names an older one) and gives every service\n" +
			"using it a new spec pointing at it, rolled out by the service's update config; `service rollback`\n" +
			"returns a service to the version before. Prints the new version's ID; the services rolling out\n" +
			"go to standard error. Labels given replace the " + k.kind + "'s; without --label they are kept.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a api.Annotations
			var err error
			if a.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			if len(labels) == 0 {
				a.Labels = nil // keep the current ones
			}
			data, err := readData(cmd.InOrStdin(), args[1], k.limit)
			if err != nil {
				return fmt.Errorf("%s %q: %w", k.kind, args[0], err)
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			o, services, err := k.update(cl, ctx, args[0], a, data)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, o.GetID())
			if len(services) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: rolling out to service(s) %s\n",
					api.VersionRef(k.annot(o).Name, k.version(o)), strings.Join(services, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "the new version's labels, K=V (repeatable; none given keeps the current ones)")
	return cmd
}

// dataVersions is `secret versions NAME`: every version kept, newest
// first.
func dataVersions[T api.Object](c *cli, k dataCmds[T]) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "versions [OPTIONS] " + strings.ToUpper(k.kind),
		Short: "List the versions kept of a " + k.kind + ", newest first (older ones stay while a service, its previous spec or a task uses them)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return listPrinted(c, quiet, func(cl *client.Client, ctx context.Context, _ control.ObjectFilter) ([]T, error) {
				return k.versions(cl, ctx, args[0])
			}, control.ObjectFilter{}, func(o T) string { return o.GetID() },
				[]string{"ID", "NAME", "CREATED"}, func(o T) string {
					return fmt.Sprintf("%s\t%s\t%s ago", o.GetID(), api.VersionRef(k.annot(o).Name, k.version(o)), ago(k.meta(o).CreatedAt))
				})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the IDs")
	c.addFormat(cmd)
	return cmd
}
