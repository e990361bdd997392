// Command apiaryd is the Apiary node daemon. It stays in the foreground:
//
//	apiaryd init --data-dir D --listen-addr HOST:PORT [--advertise-addr A] [--executor process|docker|fake] [--label k=v]...
//	apiaryd join --data-dir D --listen-addr HOST:PORT --token TOKEN MANAGER_ADDR [MANAGER_ADDR...]
//	apiaryd run  --data-dir D
//
// init creates a cluster with this node as its first manager; join enters
// one with a join token (the token decides worker or manager); run restarts
// a node that has done either, from its data directory alone. Every node
// serves its control socket at D/control.sock (mode 0600) for apiaryctl.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/executor/process"
	"github.com/apiary-io/apiary/swarm"
)

type options struct {
	dataDir, listen, advertise, executor, token, logLevel, hostname string
	externalCA, caCert                                              string
	labels                                                          []string
	heartbeat                                                       time.Duration
}

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var o options
	root := &cobra.Command{Use: "apiaryd", Short: "The Apiary node daemon", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVar(&o.dataDir, "data-dir", "/var/lib/apiary", "where the node keeps its identity, state and task records")
	root.PersistentFlags().StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	root.PersistentFlags().StringVar(&o.hostname, "hostname", "", "hostname the node reports (default: the machine's)")
	addNet := func(c *cobra.Command) {
		c.Flags().StringVar(&o.listen, "listen-addr", "", "address to listen on, HOST:PORT (required)")
		c.Flags().StringVar(&o.advertise, "advertise-addr", "", "address other nodes reach this one at (default: the listen address)")
		c.Flags().StringVar(&o.executor, "executor", "process", "how tasks run: process, docker or fake")
		c.Flags().StringArrayVar(&o.labels, "label", nil, "engine label k=v reported by this node (repeatable)")
		c.Flags().DurationVar(&o.heartbeat, "heartbeat-period", 0, "workers' heartbeat period when managing (0: adaptive)")
	}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create a cluster with this node as its first manager",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Checked before anything starts: bad input changes nothing.
			ext, root, err := parseExternalCA(o.externalCA, o.caCert)
			if err != nil {
				return err
			}
			return serve(o, func(ctx context.Context, cfg swarm.NodeConfig) (*swarm.Node, error) {
				if cfg.ListenAddr == "" {
					return nil, errors.New("--listen-addr: required")
				}
				cfg.ExternalCA, cfg.ExternalCARoot = ext, root
				return swarm.InitNode(ctx, cfg)
			})
		},
	}
	addNet(initCmd)
	initCmd.Flags().StringVar(&o.externalCA, "external-ca", "", "sign node certificates with an external cfssl CA: protocol=cfssl,url=URL[,profile=NAME][,auth-key=KEY][,cacert=FILE]")
	initCmd.Flags().StringVar(&o.caCert, "ca-cert", "", "with --external-ca: the root certificate (PEM file) the external CA signs under")
	joinCmd := &cobra.Command{
		Use:   "join --token TOKEN MANAGER_ADDR [MANAGER_ADDR...]",
		Short: "Join a cluster as a worker or a manager, as the token says",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.token == "" {
				return errors.New("--token: required")
			}
			return serve(o, func(ctx context.Context, cfg swarm.NodeConfig) (*swarm.Node, error) {
				if cfg.ListenAddr == "" {
					return nil, errors.New("--listen-addr: required")
				}
				return swarm.JoinNode(ctx, cfg, o.token, args)
			})
		},
	}
	addNet(joinCmd)
	joinCmd.Flags().StringVar(&o.token, "token", "", "join token (apiaryctl swarm join-token worker|manager)")
	runCmd := &cobra.Command{
		Use:   "run",
		Short: "Restart a node that has initialised or joined before",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(o, swarm.RestartNode)
		},
	}
	runCmd.Flags().StringVar(&o.executor, "executor", "process", "how tasks run: process, docker or fake")
	runCmd.Flags().DurationVar(&o.heartbeat, "heartbeat-period", 0, "workers' heartbeat period when managing (0: adaptive)")
	root.AddCommand(initCmd, joinCmd, runCmd)
	return root
}

func logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// serve starts the node and keeps it in the foreground until SIGINT or
// SIGTERM.
func serve(o options, start func(context.Context, swarm.NodeConfig) (*swarm.Node, error)) error {
	log, err := logger(o.logLevel)
	if err != nil {
		return err
	}
	labels := map[string]string{}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("--label %q: want k=v", l)
		}
		labels[k] = v
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	exec, closeExec, err := newExecutor(o.executor, o.dataDir, o.hostname, labels, log)
	if err != nil {
		return err
	}
	defer closeExec()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	n, err := start(startCtx, swarm.NodeConfig{
		DataDir:         o.dataDir,
		ListenAddr:      o.listen,
		AdvertiseAddr:   o.advertise,
		Executor:        exec,
		HeartbeatPeriod: o.heartbeat,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "apiaryd: node %s running as %s; control socket %s\n", n.NodeID(), n.Role(), swarm.ControlSocket(o.dataDir))
	select {
	case <-ctx.Done():
		n.Stop()
	case <-n.Left():
		if err := n.Err(); err != nil {
			return err // removed from the cluster: exit 1 saying so
		}
		fmt.Fprintln(os.Stderr, "apiaryd: node left the cluster")
	}
	return nil
}

func newExecutor(kind, dataDir, host string, labels map[string]string, log *slog.Logger) (executor.Executor, func(), error) {
	if host == "" {
		host, _ = os.Hostname()
	}
	switch kind {
	case "process":
		cfg := process.DefaultConfig()
		cfg.DataDir, cfg.Hostname, cfg.Labels, cfg.Logger = filepath.Join(dataDir, "executor"), host, labels, log
		ex, err := process.New(cfg)
		if err != nil {
			return nil, nil, err
		}
		return ex, func() { ex.Close() }, nil
	case "fake":
		return fake.New(fake.Config{Hostname: host, Labels: labels}), func() {}, nil
	case "docker":
		return newDockerExecutor(dataDir, host, labels, log)
	}
	return nil, nil, fmt.Errorf("--executor: %q is not process, docker or fake", kind)
}
