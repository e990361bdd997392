package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
	var format string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List stacks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := parseFormat(format); err != nil {
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
			var names []string
			var recs []record
			for _, s := range stacks {
				names = append(names, s.Name)
				recs = append(recs, record{"Name": s.Name, "Services": strconv.Itoa(s.Services)})
			}
			return c.printList(format, false, stacks, names, recs, []string{"Name", "Services"})
		},
	}
	cmd.Flags().StringVar(&format, "format", "", `"json", a Go template such as "{{.Name}}: {{.Services}}", or "table TEMPLATE"`)
	return cmd
}

// stackServices is service ls over a stack's services, its filters,
// -q and --format included, as docker stack services.
func (c *cli) stackServices() *cobra.Command {
	var l listFlags
	cmd := &cobra.Command{
		Use:   "services NAME",
		Short: "List the services of a stack",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return listObjects(c, l, serviceFilterKeys, serviceCols, func(ctx context.Context, cl *client.Client) ([]*api.Service, error) {
				return stackServices(ctx, cl, args[0])
			}, keepService, func(s *api.Service) string { return s.ID })
		},
	}
	l.register(cmd.Flags(), strings.Join(serviceFilterKeys, ", "), "service")
	return cmd
}

// stackPs is service ps over a stack's services, as docker stack ps.
func (c *cli) stackPs() *cobra.Command {
	var l listFlags
	cmd := &cobra.Command{
		Use:   "ps NAME",
		Short: "List the tasks of a stack",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			svcs, err := stackServices(ctx, cl, args[0])
			cancel()
			if err != nil {
				return err
			}
			ids := make([]string, len(svcs))
			for i, s := range svcs {
				ids[i] = s.ID
			}
			return c.listTasks(l, ids, func(ref string) control.TaskFilter { return control.TaskFilter{Service: ref} })
		},
	}
	l.register(cmd.Flags(), strings.Join(taskFilterKeys, ", "), "task")
	return cmd
}

// stackServices is a stack's services; none is an error, as docker's.
func stackServices(ctx context.Context, cl *client.Client, name string) ([]*api.Service, error) {
	svcs, err := stack.Services(ctx, cl, name)
	if err == nil && len(svcs) == 0 {
		err = fmt.Errorf("nothing found in stack: %s", name)
	}
	return svcs, err
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
