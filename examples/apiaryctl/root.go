package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiary-io/apiary/swarm/client"
)

// cli holds what every command shares: the socket, the output and the
// connection, opened on first use.
type cli struct {
	socket  string
	format  string
	pretty  bool
	timeout time.Duration
	out     io.Writer

	conn  *client.Client
	close func() error
}

func newRoot() *cobra.Command { return newRootTo(os.Stdout) }

// newRootTo is the command tree printing to out.
func newRootTo(out io.Writer) *cobra.Command {
	c := &cli{out: out}
	root := &cobra.Command{
		Use:           "apiaryctl",
		Short:         "Drive an Apiary cluster through a node's control socket",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPostRunE: func(*cobra.Command, []string) error {
			if c.close != nil {
				return c.close()
			}
			return nil
		},
	}
	def := os.Getenv("APIARY_SOCKET")
	if def == "" {
		def = filepath.Join("/var/lib/apiary", "control.sock")
	}
	root.PersistentFlags().StringVar(&c.socket, "socket", def, "the node's control socket (env APIARY_SOCKET)")
	root.PersistentFlags().DurationVar(&c.timeout, "timeout", 30*time.Second, "how long a command may take")
	root.AddCommand(c.serviceCmd(), c.nodeCmd(), c.swarmCmd(), c.networkCmd(), c.taskCmd(), c.secretCmd(), c.configCmd(), c.stackCmd())
	return root
}

// addFormat adds --format to a listing or inspect command.
func (c *cli) addFormat(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.format, "format", "", `output format: "json" prints the objects as JSON`)
}

func (c *cli) checkFormat() error {
	switch c.format {
	case "", "json", "table":
		return nil
	}
	return fmt.Errorf("--format: unknown format %q (want json)", c.format)
}

// connect opens the control socket.
func (c *cli) connect() (*client.Client, error) {
	if c.conn != nil {
		return c.conn, nil
	}
	if _, err := os.Stat(c.socket); err != nil {
		return nil, fmt.Errorf("control socket %s: %w (is apiaryd running? set --socket or APIARY_SOCKET)", c.socket, err)
	}
	// gRPC reads "unix://" + a relative path as an authority: the path
	// must be absolute.
	path, err := filepath.Abs(c.socket)
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", c.socket, err)
	}
	cl, err := client.Dial("unix://" + path)
	if err != nil {
		return nil, err
	}
	c.conn, c.close = cl, cl.Close
	return cl, nil
}

// session connects and returns a context bounded by --timeout: what every
// command starts with.
func (c *cli) session() (*client.Client, context.Context, context.CancelFunc, error) {
	cl, err := c.connect()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := c.ctx()
	return cl, ctx, cancel, nil
}

func (c *cli) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.timeout)
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}

// inspectCmd prints the objects named by the arguments as a JSON array, as
// docker inspect does; nothing is printed if any of them is unknown.
func inspectCmd[T any](c *cli, use, short string, get func(*client.Client, context.Context, string) (T, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(c.format)
			if err != nil {
				return err
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			out := make([]T, 0, len(args))
			for _, ref := range args {
				o, err := get(cl, ctx, ref)
				if err != nil {
					return err
				}
				out = append(out, o)
			}
			return printInspected(c, f, out)
		},
	}
	cmd.Flags().StringVar(&c.format, "format", "", `"json" (the default), or a Go template run on each object, as docker inspect's: "{{.Spec.Name}} {{json .Spec.Labels}}"`)
	return cmd
}

// printInspected prints inspected objects as JSON, or each through a
// --format template (fields by their JSON names, which are the Go
// names). A template that fails on one object prints nothing after it and
// says which object and why.
func printInspected[T any](c *cli, f listFormat, objects []T) error {
	if f.tmpl == nil || f.table {
		if f.table {
			return fmt.Errorf("--format: table templates are for listings; inspect takes json or a template")
		}
		return c.printJSON(objects)
	}
	for i, o := range objects {
		var b strings.Builder
		if err := f.tmpl.Execute(&b, o); err != nil {
			return fmt.Errorf("--format: object %d: %w", i+1, err)
		}
		fmt.Fprintln(c.out, b.String())
	}
	return nil
}
