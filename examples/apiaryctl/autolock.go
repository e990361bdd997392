package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiary-io/apiary/swarm/client"
)

// maxUnlockKeyInput bounds what `swarm unlock` reads from stdin: a key
// is 51 bytes.
const maxUnlockKeyInput = 4 << 10

// swarmUnlock gives a locked manager the cluster's unlock key, read from
// stdin (never a flag: it would be in the shell's history and ps).
func (c *cli) swarmUnlock() *cobra.Command {
	return &cobra.Command{
		Use:   "unlock",
		Short: "Unlock a restarted manager of an autolocked cluster (the unlock key on stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := readUnlockKey(cmd.InOrStdin())
			if err != nil {
				return err
			}
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			st, err := cl.NodeStatus(ctx)
			if err != nil {
				return err
			}
			if !st.Locked {
				return errors.New("swarm unlock: this node is not locked")
			}
			return cl.Unlock(ctx, key)
		},
	}
}

// readUnlockKey reads the first line of r.
func readUnlockKey(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxUnlockKeyInput)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("swarm unlock: read the key from stdin: %w", err)
	}
	key := strings.TrimSpace(line)
	if key == "" {
		return "", errors.New("swarm unlock: no unlock key on stdin (apiaryctl swarm unlock-key -q on another manager prints it)")
	}
	return key, nil
}

// swarmUnlockKey shows (or rotates) the cluster's unlock key.
func (c *cli) swarmUnlockKey() *cobra.Command {
	var rotate, quiet bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "unlock-key [-q] [--rotate]",
		Short: "Show (or rotate) the key that unlocks restarted managers of an autolocked cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, ctx, cancel, err := c.session()
			if err != nil {
				return err
			}
			defer cancel()
			var key string
			if rotate {
				key, err = cl.RotateUnlockKey(ctx)
			} else {
				key, err = cl.GetUnlockKey(ctx)
			}
			if err != nil {
				return err
			}
			var waitErr error
			if rotate {
				// The key is printed whatever the wait finds: it is the
				// cluster's now.
				out := c.out
				if quiet {
					out = cmd.ErrOrStderr() // stdout is the key alone
				}
				waitErr = waitDataKeys(cl, out, wait)
			}
			if quiet {
				fmt.Fprintln(c.out, key)
				return waitErr
			}
			if rotate {
				fmt.Fprintln(c.out, "Successfully rotated the unlock key.")
				fmt.Fprintln(c.out)
			}
			fmt.Fprintf(c.out, "To unlock a manager after it restarts, run `apiaryctl swarm unlock` and give it the key on stdin:\n\n    %s\n\nKeep it safe: a restarted manager cannot start without it.\n", key)
			return waitErr
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the unlock key (and every manager's data key), waiting until each reachable manager has")
	cmd.Flags().DurationVar(&wait, "wait", defaultDataKeyWait, fmt.Sprintf("with --rotate: how long to wait for every reachable manager to rewrap its data key (0: do not wait; at most %s)", maxDataKeyWait))
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the key alone")
	return cmd
}

// How long `unlock-key --rotate` and `swarm update --autolock` wait for
// the managers to apply the new key: each rewrites its raft log and
// snapshots under a new data key, seconds for a log of the snapshot
// interval's size.
const (
	defaultDataKeyWait = time.Minute
	maxDataKeyWait     = time.Hour
)

// waitDataKeys waits until every reachable manager reports the cluster's
// KEK generation (client.WaitDataKeys), up to wait, and says which
// managers have the new key and which do not: until a manager has it, the
// previous key (and a copy of its data dir from before) still opens its
// data.
func waitDataKeys(cl *client.Client, out io.Writer, wait time.Duration) error {
	if wait <= 0 {
		return nil
	}
	if wait > maxDataKeyWait {
		return fmt.Errorf("--wait: %s is more than %s", wait, maxDataKeyWait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := cl.WaitDataKeys(ctx, 200*time.Millisecond)
	if err != nil {
		return fmt.Errorf("after %s, %w; until they have, the previous key still opens their data (each reports the generation it has applied in its node's DataKey: apiaryctl node inspect)", wait, err)
	}
	fmt.Fprintf(out, "Every reachable manager has the new key: %s.\n", client.Names(st.Applied))
	if len(st.Unreachable) > 0 {
		fmt.Fprintf(out, "Unreachable, not rewrapped yet: %s. Each still opens with the key it had: unlock it with that one, and it takes the new key once it runs.\n", client.Names(st.Unreachable))
	}
	return nil
}
