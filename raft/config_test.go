package raft

import (
	"strings"
	"testing"
)

// CheckTuning checks what does not name the member, as NewNode will, so a
// program that sets the identity later can refuse a bad config up front.
func TestCheckTuning(t *testing.T) {
	c := DefaultConfig()
	c.SnapshotBytes, c.MaxEntrySize = 0, 0
	if err := c.CheckTuning(); err != nil {
		t.Fatalf("defaults without an identity: %v", err)
	}
	if c.SnapshotBytes != DefaultSnapshotBytes || c.MaxEntrySize != DefaultMaxEntrySize {
		t.Errorf("zero sizes not filled in: snapshot bytes %d, max entry size %d", c.SnapshotBytes, c.MaxEntrySize)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"tick", func(c *Config) { c.TickInterval = 0 }, "TickInterval"},
		{"negative proposal wait", func(c *Config) { c.ProposalWait = -1 }, "ProposalWait"},
		{"proposal wait past a tick", func(c *Config) { c.ProposalWait = c.TickInterval + 1 }, "ProposalWait"},
		{"election", func(c *Config) { c.ElectionTick = c.HeartbeatTick }, "ElectionTick"},
		{"snapshot interval", func(c *Config) { c.SnapshotInterval = 0 }, "SnapshotInterval"},
		{"inflight", func(c *Config) { c.MaxInflightMsgs = 0 }, "MaxInflightMsgs"},
		{"entry size", func(c *Config) { c.MaxEntrySize = MaxEntrySizeLimit + 1 }, "MaxEntrySize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.CheckTuning()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
			// NewNode says the same, besides what names the member.
			if verr := c.validate(); verr == nil || !strings.Contains(verr.Error(), tc.want) {
				t.Errorf("validate: %v, want one naming %s", verr, tc.want)
			}
		})
	}
}
