package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
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
			if quiet {
				fmt.Fprintln(c.out, key)
				return nil
			}
			if rotate {
				fmt.Fprintln(c.out, "Successfully rotated the unlock key. Each manager rewraps its data key with it as soon as it sees it; one that is down now still unlocks with the previous key until it has.")
				fmt.Fprintln(c.out)
			}
			fmt.Fprintf(c.out, "To unlock a manager after it restarts, run `apiaryctl swarm unlock` and give it the key on stdin:\n\n    %s\n\nKeep it safe: a restarted manager cannot start without it.\n", key)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the unlock key")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the key alone")
	return cmd
}
