package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
)

func (c *cli) serviceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Manage services"}
	cmd.AddCommand(c.serviceCreate(), c.serviceUpdate(), c.serviceLs(), c.servicePs(), c.serviceInspect(),
		c.serviceScale(), c.serviceRollback(), c.serviceRm(), c.serviceLogs())
	return cmd
}

// rollout are the flags that say what create, update and scale do once
// the write is made: wait with a progress display (the default), return
// at once (-d), print nothing but the ID (-q), or write nothing and print
// the plan (--dry-run).
type rollout struct {
	detach, quiet, dryRun bool
}

func (r *rollout) register(cmd *cobra.Command, dryRun bool) {
	cmd.Flags().BoolVarP(&r.detach, "detach", "d", false, "return at once, without waiting for the service to converge")
	cmd.Flags().BoolVarP(&r.quiet, "quiet", "q", false, "print no progress")
	if dryRun {
		cmd.Flags().BoolVar(&r.dryRun, "dry-run", false, "print the tasks that would be created, replaced or removed and where they would run, changing nothing")
	}
}

// wait shows the service's progress until it converges, unless -d or -q
// (which waits silently, as docker's -q). rollback says the user asked for
// a rollback (its completion is then the success).
func (c *cli) wait(cl *client.Client, r rollout, ref string, rollback bool) error {
	if r.detach {
		return nil
	}
	// The rollout takes as long as it takes (docker waits too); Ctrl-C
	// stops the wait, not the rollout.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := c.out
	if r.quiet {
		out = io.Discard
	}
	return waitProgress(ctx, cl, out, ref, rollback)
}

func (c *cli) serviceCreate() *cobra.Command {
	var f serviceFlags
	var r rollout
	cmd := &cobra.Command{
		Use:   "create --name NAME [OPTIONS] [-- COMMAND ARGS...]",
		Short: "Create a service",
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.name == "" {
				return fmt.Errorf("--name: required")
			}
			var spec api.ServiceSpec
			if err := f.apply(&spec, cmd.Flags().Changed, args, true); err != nil {
				return err
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			if r.dryRun {
				p, err := cl.PlanService(ctx, "", spec)
				if err != nil {
					return err
				}
				return printPlan(c.out, p)
			}
			svc, err := cl.CreateService(ctx, spec)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, svc.ID)
			return c.wait(cl, r, svc.ID, false)
		},
	}
	f.register(cmd.Flags(), true)
	r.register(cmd, true)
	return cmd
}

func (c *cli) serviceUpdate() *cobra.Command {
	var f serviceFlags
	var r rollout
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] SERVICE [-- COMMAND ARGS...]",
		Short: "Update a service",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, command := args[0], args[1:]
			if cmd.ArgsLenAtDash() > 1 || (cmd.ArgsLenAtDash() < 0 && len(args) > 1) {
				return fmt.Errorf("update takes one service, then the command after --")
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			svc, err := cl.GetService(ctx, ref)
			if err != nil {
				return err
			}
			spec := svc.Spec.Copy()
			if len(f.networkRm) > 0 || len(f.networkAdd) > 0 {
				// The service holds network IDs; the flags name networks.
				if f.networkID, err = networkIDs(ctx, cl); err != nil {
					return err
				}
			}
			if err := f.apply(&spec, cmd.Flags().Changed, command, false); err != nil {
				return err
			}
			if r.dryRun {
				p, err := cl.PlanService(ctx, svc.ID, spec)
				if err != nil {
					return err
				}
				return printPlan(c.out, p)
			}
			svc, err = cl.UpdateService(ctx, svc.ID, svc.Meta.Version, spec)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, svc.Spec.Name)
			return c.wait(cl, r, svc.ID, false)
		},
	}
	f.register(cmd.Flags(), false)
	r.register(cmd, true)
	return cmd
}

func (c *cli) serviceInspect() *cobra.Command {
	return inspectCmd(c, "inspect SERVICE...", "Show services in detail (JSON)", (*client.Client).GetService)
}

func (c *cli) serviceScale() *cobra.Command {
	var r rollout
	cmd := &cobra.Command{
		Use:   "scale SERVICE=REPLICAS...",
		Short: "Scale replicated services",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			type scale struct {
				ref string
				n   int64
			}
			var todo []scale
			// Parse everything first: a bad argument changes nothing.
			for _, a := range args {
				ref, n, ok := strings.Cut(a, "=")
				v, err := strconv.ParseInt(n, 10, 64)
				if !ok || ref == "" || err != nil {
					return fmt.Errorf("scale %q: want SERVICE=REPLICAS", a)
				}
				todo = append(todo, scale{ref, v})
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			for _, s := range todo {
				if _, err := cl.GetService(ctx, s.ref); err != nil {
					return err
				}
			}
			var ids []string
			for _, s := range todo {
				svc, err := cl.ScaleService(ctx, s.ref, s.n)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.out, "%s scaled to %d\n", s.ref, s.n)
				ids = append(ids, svc.ID)
			}
			for _, id := range ids {
				if err := c.wait(cl, r, id, false); err != nil {
					return err
				}
			}
			return nil
		},
	}
	r.register(cmd, false)
	return cmd
}

func (c *cli) serviceRollback() *cobra.Command {
	var r rollout
	cmd := &cobra.Command{
		Use:   "rollback SERVICE",
		Short: "Return a service to its previous spec",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			s, err := cl.RollbackService(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, s.Spec.Name)
			return c.wait(cl, r, s.ID, true)
		},
	}
	r.register(cmd, false)
	return cmd
}

func (c *cli) serviceRm() *cobra.Command {
	return removeCmd(c, "rm SERVICE...", "Remove services",
		func(cl *client.Client, ctx context.Context, ref string) error {
			_, err := cl.GetService(ctx, ref)
			return err
		},
		(*client.Client).RemoveService)
}

// removeCmd removes the objects named by the arguments, printing each
// reference; if any of them is unknown, none is removed.
func removeCmd(c *cli, use, short string, get, remove func(*client.Client, context.Context, string) error) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Aliases: []string{"remove"},
		Short:   short,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			for _, ref := range args {
				if err := get(cl, ctx, ref); err != nil {
					return err
				}
			}
			for _, ref := range args {
				if err := remove(cl, ctx, ref); err != nil {
					return err
				}
				fmt.Fprintln(c.out, ref)
			}
			return nil
		},
	}
}

func (c *cli) serviceLogs() *cobra.Command {
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs [--follow] [--tail N] SERVICE",
		Short: "Show the output of a service's tasks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.connect()
			if err != nil {
				return err
			}
			ctx, cancel := c.ctx()
			if follow {
				ctx, cancel = context.WithCancel(context.Background())
			}
			defer cancel()
			st, err := cl.ServiceLogs(ctx, control.LogsRequest{Service: args[0], Follow: follow, Tail: tail})
			if err != nil {
				return err
			}
			for {
				l, err := st.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(c.out, "%s | %s\n", l.TaskName, l.Line)
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	cmd.Flags().IntVar(&tail, "tail", 0, "only the last N lines of each task (0: all)")
	return cmd
}

func table(out io.Writer, cols ...string) *tabwriter.Writer {
	w := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, strings.Join(cols, "\t"))
	return w
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func titled(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func ago(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	if d < time.Second {
		return "less than a second"
	}
	return d.String()
}

func runs(t api.TaskSpec) string {
	switch {
	case t.Container != nil:
		return t.Container.Image
	case t.Process != nil:
		return strings.Join(t.Process.Command, " ")
	}
	return ""
}

func ports(s *api.Service) string {
	var ps []api.PortConfig
	if s.Endpoint != nil {
		ps = s.Endpoint.Ports
	}
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("*:%d->%d/%s", p.PublishedPort, p.TargetPort, p.Protocol))
	}
	return strings.Join(out, ",")
}
