// Command apiaryd is the Apiary node daemon. It stays in the foreground:
//
//	apiaryd init --data-dir D --listen-addr HOST:PORT [NODE OPTIONS] [CLUSTER SETTINGS] [--external-ca SPEC --ca-cert ROOT.pem]
//	apiaryd join --data-dir D --listen-addr HOST:PORT [NODE OPTIONS] --token TOKEN [--availability active|pause|drain] MANAGER_ADDR [MANAGER_ADDR...]
//	apiaryd run  --data-dir D [NODE OPTIONS] [--force-new-cluster]
//
// NODE OPTIONS: --advertise-addr A, --executor process|docker|fake,
// --hostname H, --label k=v (repeatable), --log-level L, --log-format text|json,
// --debug-addr 127.0.0.1:PORT (Go's profiler, loopback only: debug.go).
//
// CLUSTER SETTINGS (init only, as `docker swarm init` takes them): the new
// cluster's --dispatcher-heartbeat D (0: adaptive), --cert-expiry D and
// --task-history-limit N. They are the cluster's, not the node's: they live
// in the cluster object and change with `apiaryctl swarm update`. The old
// per-node --heartbeat-period is still accepted: on init it is
// --dispatcher-heartbeat, on join and run it is ignored, with a warning.
//
// init creates a cluster with this node as its first manager; join enters
// one with a join token (the token decides worker or manager); run restarts
// a node that has done either, from its data directory alone: the node
// options init or join were given are saved in D/apiaryd.json, and one given
// to run overrides its saved value (options.go). run --force-new-cluster
// recovers a cluster that lost its quorum from this manager's data. Every
// node serves its control socket at D/control.sock (mode 0600) for
// apiaryctl.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/executor/process"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var (
		o                  nodeOptions
		dataDir, token     string
		availability       string
		externalCA, caCert string
		forceNewCluster    bool
		cluster            clusterSettings
	)
	root := &cobra.Command{Use: "apiaryd", Short: "The Apiary node daemon", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVar(&dataDir, "data-dir", "/var/lib/apiary", "where the node keeps its identity, state and task records")
	// create saves the node options of a new node, then starts it.
	create := func(cmd *cobra.Command, start func(context.Context, swarm.NodeConfig) (*swarm.Node, error)) error {
		if o.listen == "" {
			return errors.New("--listen-addr: required")
		}
		if swarm.HasNode(dataDir) {
			return fmt.Errorf("data dir %s already holds a node: restart it with run, or use another directory", dataDir)
		}
		// Saved before the node starts: a node that exists has its
		// options (a failed start leaves them for the next init or join
		// to replace).
		log, err := o.save(dataDir, cmd.Flags())
		if err != nil {
			return err
		}
		return serve(dataDir, o, cmd.Flags(), log, start)
	}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create a cluster with this node as its first manager",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Checked before anything starts: bad input changes nothing.
			ext, root, err := parseExternalCA(externalCA, caCert)
			if err != nil {
				return err
			}
			spec, err := cluster.spec()
			if err != nil {
				return err
			}
			return create(cmd, func(ctx context.Context, cfg swarm.NodeConfig) (*swarm.Node, error) {
				cfg.ExternalCA, cfg.ExternalCARoot = ext, root
				cfg.Manager.ClusterSpec = spec
				n, err := swarm.InitNode(ctx, cfg)
				if err == nil && spec.EncryptionConfig.AutoLockManagers {
					fmt.Fprintf(os.Stderr, "apiaryd: autolock is on. To start a manager after it restarts, run `apiaryctl swarm unlock` and give it this key on stdin:\n\n    %s\n\nKeep it safe: a restarted manager cannot start without it (apiaryctl swarm unlock-key shows it again).\n", n.UnlockKey())
				}
				return n, err
			})
		},
	}
	cluster.flags(initCmd.Flags())
	initCmd.Flags().StringVar(&externalCA, "external-ca", "", "sign node certificates with an external cfssl CA: protocol=cfssl,url=URL[,profile=NAME][,auth-key=KEY][,cacert=FILE]")
	initCmd.Flags().StringVar(&caCert, "ca-cert", "", "with --external-ca: the root certificate (PEM file) the external CA signs under")
	joinCmd := &cobra.Command{
		Use:   "join --token TOKEN MANAGER_ADDR [MANAGER_ADDR...]",
		Short: "Join a cluster as a worker or a manager, as the token says",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				return errors.New("--token: required")
			}
			// Checked before anything is saved or started.
			if !slices.Contains([]string{"active", "pause", "drain"}, availability) {
				return fmt.Errorf("--availability: %q is not active, pause or drain", availability)
			}
			return create(cmd, func(ctx context.Context, cfg swarm.NodeConfig) (*swarm.Node, error) {
				cfg.Availability = api.NodeAvailability(availability)
				return swarm.JoinNode(ctx, cfg, token, args)
			})
		},
	}
	joinCmd.Flags().StringVar(&token, "token", "", "join token (apiaryctl swarm join-token worker|manager)")
	// The node's availability from the start, not a node option: after the
	// join it is the cluster's (apiaryctl node update --availability).
	joinCmd.Flags().StringVar(&availability, "availability", "active", "the node's availability once it joins: active, pause or drain (a drained node runs no task from the start)")
	runCmd := &cobra.Command{
		Use:   "run",
		Short: "Restart a node that has initialised or joined before",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !swarm.HasNode(dataDir) {
				return fmt.Errorf("data dir %s holds no node: initialise or join first", dataDir)
			}
			notes, err := loadNodeOptions(dataDir, cmd.Flags())
			if err != nil {
				return err
			}
			log, err := o.save(dataDir, cmd.Flags())
			if err != nil {
				return err
			}
			for _, n := range notes {
				log.Info("node options: "+n.msg, "flag", n.flag, "saved", n.saved, "now", n.now)
			}
			return serve(dataDir, o, cmd.Flags(), log, func(ctx context.Context, cfg swarm.NodeConfig) (*swarm.Node, error) {
				cfg.ForceNewCluster = forceNewCluster
				return swarm.RestartNode(ctx, cfg)
			})
		},
	}
	runCmd.Flags().BoolVar(&forceNewCluster, "force-new-cluster", false, "recover a cluster that lost its quorum from this manager's data: it becomes the only manager, keeping every service and task (once; never restart the lost managers with their old data)")
	for _, c := range []*cobra.Command{initCmd, joinCmd, runCmd} {
		c.Flags().AddFlagSet(o.flags())
	}
	for _, c := range []*cobra.Command{joinCmd, runCmd} {
		ignoreHeartbeatPeriod(c.Flags())
	}
	root.AddCommand(initCmd, joinCmd, runCmd)
	return root
}

// save checks the node options and saves them in dataDir (created if
// need be; swarm tightens an existing one): only valid options are saved.
// It returns the logger they ask for.
func (o *nodeOptions) save(dataDir string, flags *pflag.FlagSet) (*slog.Logger, error) {
	log, err := o.check()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	if err := saveNodeOptions(dataDir, flags); err != nil {
		return nil, err
	}
	return log, nil
}

// check refuses node options that cannot work, before anything is saved
// or started, and returns the logger they ask for.
func (o *nodeOptions) check() (*slog.Logger, error) {
	if _, err := parseLabels(o.labels); err != nil {
		return nil, err
	}
	if o.debugAddr != "" {
		if err := checkDebugAddr(o.debugAddr); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(executors, o.executor) {
		return nil, fmt.Errorf("--executor: %q is not %s", o.executor, strings.Join(executors, ", "))
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", o.logLevel)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch o.logFormat {
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", o.logFormat)
}

// executors are the values of --executor.
var executors = []string{"process", "docker", "fake"}

func parseLabels(list []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, l := range list {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want k=v", l)
		}
		labels[k] = v
	}
	return labels, nil
}

// serve starts the node and keeps it in the foreground until SIGINT or
// SIGTERM.
func serve(dataDir string, o nodeOptions, flags *pflag.FlagSet, log *slog.Logger, start func(context.Context, swarm.NodeConfig) (*swarm.Node, error)) error {
	labels, err := parseLabels(o.labels)
	if err != nil {
		return err
	}
	var attrs []any
	visitNodeFlags(flags, func(f *pflag.Flag) { attrs = append(attrs, f.Name, flagValue(f)) })
	log.Info("node options", attrs...)
	mesh, err := o.meshConfig()
	if err != nil {
		return err
	}
	exec, closeExec, err := newExecutor(o.executor, dataDir, o.hostname, labels, mesh.DataPath == swarm.DataPathHost, log)
	if err != nil {
		return err
	}
	defer closeExec()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopDebug, err := serveDebug(ctx, o.debugAddr, log)
	if err != nil {
		return err
	}
	defer stopDebug()
	var unlockKey string
	if swarm.Locked(dataDir) {
		// As long as it takes: the control socket answers unlock and
		// status meanwhile, and docker.sock `docker swarm unlock`.
		stopLocked, err := serveLockedDockerAPI(ctx, dataDir, o, log)
		if err != nil {
			return err
		}
		unlockKey, err = swarm.WaitForUnlock(ctx, dataDir, log)
		stopLocked()
		if err != nil {
			return err
		}
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cfg := swarm.DefaultNodeConfig()
	cfg.UnlockKey = unlockKey
	cfg.DataDir, cfg.ListenAddr, cfg.AdvertiseAddr = dataDir, o.listen, o.advertise
	cfg.Executor, cfg.Logger, cfg.Mesh = exec, log, mesh
	n, err := start(startCtx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "apiaryd: node %s running as %s; control socket %s\n", n.NodeID(), n.Role(), swarm.ControlSocket(dataDir))
	stopDocker, err := startDockerAPI(ctx, dataDir, o, n, log)
	if err != nil {
		n.Stop()
		return err
	}
	defer stopDocker()
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

func newExecutor(kind, dataDir, host string, labels map[string]string, hostNetwork bool, log *slog.Logger) (executor.Executor, func(), error) {
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
		return newDockerExecutor(dataDir, host, labels, hostNetwork, log)
	}
	return nil, nil, fmt.Errorf("--executor: %q is not %s", kind, strings.Join(executors, ", "))
}
