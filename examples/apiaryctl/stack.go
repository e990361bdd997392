package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
	"github.com/apiary-io/apiary/swarm/stack"
)

// stackCmd is `docker stack` for a cluster: compose files deployed as
// services, networks, secrets and configs under the stack's namespace
// label, which docker stack reads too (swarm/stack).
func (c *cli) stackCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "stack", Short: "Deploy and manage stacks of services from compose files"}
	cmd.AddCommand(c.stackDeploy(), c.stackLs(), c.stackServices(), c.stackPs(), c.stackRm())
	return cmd
}

func (c *cli) stackDeploy() *cobra.Command {
	var files []string
	var prune bool
	cmd := &cobra.Command{
		Use:     "deploy -c FILE... NAME",
		Aliases: []string{"up"},
		Short:   "Deploy a new stack or update an existing one",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if len(files) == 0 {
				return fmt.Errorf("--compose-file (-c) is required")
			}
			in := stack.Input{Name: name, Env: environ()}
			for _, f := range files {
				b, err := readLimited(f, stack.MaxFileBytes)
				if err != nil {
					return err
				}
				abs, err := filepath.Abs(f)
				if err != nil {
					return err
				}
				in.Files = append(in.Files, stack.File{Name: abs, Content: b})
			}
			// Everything is read and checked before anything is written.
			p, warnings, err := stack.Load(cmd.Context(), in)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			st, err := stack.Convert(p, name, nil)
			if err != nil {
				return err
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			done, err := stack.Deploy(ctx, cl, st, prune)
			if done != nil {
				for _, s := range done.Removed {
					fmt.Fprintf(c.out, "Removing %s\n", s)
				}
				for _, s := range done.Created {
					fmt.Fprintf(c.out, "Creating %s\n", s)
				}
				for _, s := range done.Updated {
					fmt.Fprintf(c.out, "Updating %s\n", s)
				}
				for _, s := range done.Kept {
					fmt.Fprintf(c.out, "Keeping %s (apiaryctl secret update changes it)\n", s)
				}
			}
			return err
		},
	}
	cmd.Flags().StringSliceVarP(&files, "compose-file", "c", nil, "a compose file (repeat to merge several)")
	cmd.Flags().BoolVar(&prune, "prune", false, "remove the stack's services the files no longer have")
	return cmd
}

func (c *cli) stackLs() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List stacks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.checkFormat(); err != nil {
				return err
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			stacks, err := stack.List(ctx, cl)
			if err != nil {
				return err
			}
			if c.format == "json" {
				return c.printJSON(stacks)
			}
			w := table(c.out, "NAME", "SERVICES")
			for _, s := range stacks {
				fmt.Fprintf(w, "%s\t%d\n", s.Name, s.Services)
			}
			return w.Flush()
		},
	}
	c.addFormat(cmd)
	return cmd
}

func (c *cli) stackServices() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "services NAME",
		Short: "List the services of a stack",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.checkFormat(); err != nil {
				return err
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			svcs, err := stack.Services(ctx, cl, args[0])
			if err != nil {
				return err
			}
			if len(svcs) == 0 {
				return fmt.Errorf("nothing found in stack: %s", args[0])
			}
			if c.format == "json" {
				return c.printJSON(svcs)
			}
			return c.serviceTable(ctx, cl, svcs)
		},
	}
	c.addFormat(cmd)
	return cmd
}

func (c *cli) stackPs() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ps NAME",
		Short: "List the tasks of a stack",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.checkFormat(); err != nil {
				return err
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			svcs, err := stack.Services(ctx, cl, args[0])
			if err != nil {
				return err
			}
			if len(svcs) == 0 {
				return fmt.Errorf("nothing found in stack: %s", args[0])
			}
			var rows [][]string
			var all []any
			hosts := hostnames(ctx, cl)
			for _, s := range svcs {
				tasks, err := cl.ListTasks(ctx, control.TaskFilter{Service: s.ID})
				if err != nil {
					return err
				}
				for _, t := range tasks {
					all = append(all, t)
					rows = append(rows, []string{short(t.ID), t.Name, hosts[t.NodeID], titled(t.DesiredState.String()),
						titled(t.Status.State.String()) + " " + ago(t.Status.Timestamp) + " ago", t.Status.Err})
				}
			}
			if c.format == "json" {
				return c.printJSON(all)
			}
			w := table(c.out, "ID", "NAME", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR")
			for _, r := range rows {
				fmt.Fprintln(w, strings.Join(r, "\t"))
			}
			return w.Flush()
		},
	}
	c.addFormat(cmd)
	return cmd
}

func (c *cli) stackRm() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove", "down"},
		Short:   "Remove stacks: their services, networks, secrets and configs",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			var failed []string
			for _, name := range args {
				removed, err := stack.Remove(ctx, cl, name)
				for _, r := range removed {
					fmt.Fprintf(c.out, "Removing %s\n", r)
				}
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%v\n", err)
					failed = append(failed, name)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("failed to remove some resources from stack: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
}

// environ is the process environment, which interpolates ${VAR} in
// compose files.
func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", path, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	_, err = f.ReadAt(b, 0)
	return b, err
}

// serviceTable prints services as service ls and stack services do.
func (c *cli) serviceTable(ctx context.Context, cl *client.Client, svcs []*api.Service) error {
	w := table(c.out, "ID", "NAME", "MODE", "REPLICAS", "RUNS", "PORTS")
	for _, s := range svcs {
		p, err := cl.ServiceProgress(ctx, s.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", short(s.ID), s.Spec.Name, s.Spec.Mode.ModeName(), p.Running, p.Desired, runs(s.Spec.TaskTemplate), ports(s))
	}
	return w.Flush()
}
