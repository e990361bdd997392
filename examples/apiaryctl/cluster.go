package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiary-io/apiary/swarm/api"
)

func (c *cli) swarmCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "swarm", Short: "Manage the cluster"}
	inspect := &cobra.Command{
		Use:   "inspect",
		Short: "Show the cluster (JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFormat(c.format)
			if err != nil {
				return err
			}
			if c.pretty && c.format != "" {
				return fmt.Errorf("--pretty and --format: choose one")
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			cluster, err := cl.GetCluster(ctx)
			if err != nil {
				return err
			}
			if c.pretty {
				return printCluster(c.out, cluster)
			}
			if f.tmpl != nil {
				return printInspected(c, f, []*api.Cluster{cluster})
			}
			return c.printJSON(cluster) // one object, not a list: there is one cluster
		},
	}
	inspect.Flags().StringVar(&c.format, "format", "", `"json" (the default), or a Go template run on the cluster: "{{.Spec.Name}}"`)
	inspect.Flags().BoolVar(&c.pretty, "pretty", false, "print the cluster's settings in a human-friendly format")
	var rotate, quiet bool
	token := &cobra.Command{
		Use:   "join-token worker|manager",
		Short: "Show (or rotate) the token that joins nodes in a role",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			role := args[0]
			if role != "worker" && role != "manager" {
				return fmt.Errorf("join-token: role %q is not worker or manager", role)
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			var tok string
			if rotate {
				if tok, err = cl.RotateJoinToken(ctx, role); err != nil {
					return err
				}
			} else {
				cluster, err := cl.GetCluster(ctx)
				if err != nil {
					return err
				}
				tok = cluster.JoinTokens.Worker
				if role == "manager" {
					tok = cluster.JoinTokens.Manager
				}
			}
			if quiet {
				fmt.Fprintln(c.out, tok)
				return nil
			}
			if rotate {
				fmt.Fprintf(c.out, "Successfully rotated %s join token.\n\n", role)
			}
			fmt.Fprintf(c.out, "To add a %s to this cluster, run the following command:\n\n    apiaryd join --token %s --data-dir DIR --listen-addr HOST:PORT MANAGER_ADDR\n", role, tok)
			return nil
		},
	}
	token.Flags().BoolVar(&rotate, "rotate", false, "replace the token; the old one stops working")
	token.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the token alone")
	var force bool
	leave := &cobra.Command{
		Use:   "leave [--force]",
		Short: "Take the node behind the socket out of its cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			if err := cl.Leave(ctx, force); err != nil {
				return err
			}
			fmt.Fprintln(c.out, "Node left the swarm.")
			return nil
		},
	}
	leave.Flags().BoolVarP(&force, "force", "f", false, "leave even as a manager")
	var rotateCA bool
	var bundleDir string
	ca := &cobra.Command{
		Use:   "ca [--rotate | --client-bundle DIR]",
		Short: "Show (or start) a rotation of the cluster's root CA, or issue a client bundle",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			if bundleDir != "" {
				if rotateCA {
					return fmt.Errorf("--client-bundle and --rotate cannot be used together")
				}
				id, err := writeClientBundle(ctx, cl, bundleDir)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.out, "Client certificate %s written to %s (ca.pem, cert.pem, key.pem): DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=%s\n", id, bundleDir, bundleDir)
				return nil
			}
			st, err := cl.RootCAStatus(ctx)
			if rotateCA {
				st, err = cl.RotateRootCA(ctx)
			}
			if err != nil {
				return err
			}
			return c.printJSON(st)
		},
	}
	ca.Flags().BoolVar(&rotateCA, "rotate", false, "replace the root CA (old and new are trusted until every node has a new certificate)")
	ca.Flags().StringVar(&bundleDir, "client-bundle", "", "issue a client certificate for the Docker API's TLS listener into DIR (ca.pem, cert.pem, key.pem)")
	cmd.AddCommand(inspect, c.swarmUpdate(), token, leave, ca, c.swarmUnlock(), c.swarmUnlockKey())
	return cmd
}

// swarmUpdate changes the cluster-wide settings; only the flags given
// change. The cluster object also changes as the CA and join tokens do,
// so the write is a read-modify-write at the version read, repeated on a
// conflict (client.EditCluster).
func (c *cli) swarmUpdate() *cobra.Command {
	var heartbeat, certExpiry, gossipRotation time.Duration
	var history int64
	var autolock bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "update [--dispatcher-heartbeat D] [--cert-expiry D] [--task-history-limit N] [--gossip-key-rotation D] [--autolock=true|false]",
		Short: "Change the cluster's settings (in force at once, no restart)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			changed := cmd.Flags().Changed
			if !changed("dispatcher-heartbeat") && !changed("cert-expiry") && !changed("task-history-limit") && !changed("gossip-key-rotation") && !changed("autolock") {
				return fmt.Errorf("swarm update: nothing to change: give --dispatcher-heartbeat, --cert-expiry, --task-history-limit, --gossip-key-rotation or --autolock")
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			_, err = cl.EditCluster(ctx, func(spec *api.ClusterSpec) error {
				if changed("dispatcher-heartbeat") {
					spec.Dispatcher.HeartbeatPeriod = heartbeat
				}
				if changed("cert-expiry") {
					spec.CAConfig.NodeCertExpiry = certExpiry
				}
				if changed("task-history-limit") {
					spec.Orchestration.TaskHistoryRetentionLimit = history
				}
				if changed("gossip-key-rotation") {
					spec.Gossip.KeyRotation = gossipRotation
				}
				if changed("autolock") {
					spec.EncryptionConfig.AutoLockManagers = autolock
				}
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, "Swarm updated.")
			if changed("autolock") && autolock {
				key, err := cl.GetUnlockKey(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.out, "To unlock a manager after it restarts, run `apiaryctl swarm unlock` and give it the key on stdin:\n\n    %s\n\nKeep it safe: a restarted manager cannot start without it.\n", key)
			}
			if changed("autolock") {
				// Each manager rewraps its data key (and, turning
				// autolock on, rotates it): the old key file opens a
				// manager's data until it has.
				return waitDataKeys(cl, c.out, wait)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.DurationVar(&heartbeat, "dispatcher-heartbeat", 0, fmt.Sprintf("how often workers heartbeat: 0 (adaptive: 1s up to 2,000 nodes) or %s to %s", api.MinHeartbeatPeriod, api.MaxHeartbeatPeriod))
	fs.DurationVar(&certExpiry, "cert-expiry", 0, fmt.Sprintf("lifetime of node certificates issued from now on: 0 (default %s) or %s to %s", api.DefaultNodeCertExpiry, time.Hour, api.MaxNodeCertExpiry))
	fs.Int64Var(&history, "task-history-limit", 0, fmt.Sprintf("finished tasks kept per slot, 0 to %d", api.MaxTaskHistoryRetention))
	fs.DurationVar(&wait, "wait", defaultDataKeyWait, fmt.Sprintf("with --autolock: how long to wait for every reachable manager to rewrap its data key (0: do not wait; at most %s)", maxDataKeyWait))
	fs.BoolVar(&autolock, "autolock", false, "keep the managers' data locked at rest by an unlock key: a restarted manager waits for `apiaryctl swarm unlock`")
	fs.DurationVar(&gossipRotation, "gossip-key-rotation", 0, fmt.Sprintf("how often the gossip encryption key is replaced (also whenever a node is removed): 0 (default %s) or %s to %s", api.DefaultGossipKeyRotation, api.MinGossipKeyRotation, days(api.MaxGossipKeyRotation)))
	return cmd
}
