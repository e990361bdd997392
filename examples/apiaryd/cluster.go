package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/apiary-io/apiary/swarm/api"
)

// clusterSettings are the new cluster's settings init takes, as `docker
// swarm init` does. They are the cluster's, not the node's: init writes
// them into the cluster object, `apiaryctl swarm update` changes them
// there, and they are not saved with the node options.
type clusterSettings struct {
	heartbeat    time.Duration
	certExpiry   time.Duration
	historyLimit int64
	addrPool     []string
	subnetSize   uint32
	autolock     bool
}

// flags registers the settings on init, with --heartbeat-period, the
// per-node flag of before, as a deprecated name of --dispatcher-heartbeat.
func (c *clusterSettings) flags(fs *pflag.FlagSet) {
	def := api.DefaultClusterSpec()
	fs.DurationVar(&c.heartbeat, "dispatcher-heartbeat", def.Dispatcher.HeartbeatPeriod, "the cluster's worker heartbeat period (0: adaptive, 1s up to 2,000 nodes)")
	fs.DurationVar(&c.certExpiry, "cert-expiry", def.CAConfig.NodeCertExpiry, "lifetime of node certificates (at least 1h)")
	fs.Int64Var(&c.historyLimit, "task-history-limit", def.Orchestration.TaskHistoryRetentionLimit, "finished tasks kept per slot")
	fs.StringSliceVar(&c.addrPool, "default-addr-pool", []string{api.DefaultAddrPool}, "address pools networks' subnets come from, CIDR[,CIDR] (repeatable)")
	fs.Uint32Var(&c.subnetSize, "default-addr-pool-mask-length", api.DefaultSubnetSize, "prefix length of each network's subnet cut from the pools")
	fs.BoolVar(&c.autolock, "autolock", false, "lock the managers' data at rest with an unlock key: a restarted manager waits for `apiaryctl swarm unlock` (the key is printed once)")
	fs.DurationVar(&c.heartbeat, "heartbeat-period", def.Dispatcher.HeartbeatPeriod, "")
	_ = fs.MarkDeprecated("heartbeat-period", "the heartbeat period is the cluster's: use --dispatcher-heartbeat")
}

// spec is the new cluster's spec, refused (naming the flag and the field)
// before anything starts.
func (c *clusterSettings) spec() (api.ClusterSpec, error) {
	spec := api.DefaultClusterSpec()
	spec.Dispatcher.HeartbeatPeriod = c.heartbeat
	spec.CAConfig.NodeCertExpiry = c.certExpiry
	spec.Orchestration.TaskHistoryRetentionLimit = c.historyLimit
	spec.Network = api.NetworkConfig{DefaultAddrPool: c.addrPool, SubnetSize: c.subnetSize}
	spec.EncryptionConfig.AutoLockManagers = c.autolock
	if err := spec.Validate(); err != nil {
		return spec, fmt.Errorf("cluster settings (--dispatcher-heartbeat, --cert-expiry, --task-history-limit, --default-addr-pool, --default-addr-pool-mask-length): %w", err)
	}
	return spec, nil
}

// ignoreHeartbeatPeriod keeps join and run accepting --heartbeat-period,
// the per-node flag of before, saying it no longer does anything there.
func ignoreHeartbeatPeriod(fs *pflag.FlagSet) {
	var ignored time.Duration
	fs.DurationVar(&ignored, "heartbeat-period", 0, "")
	_ = fs.MarkDeprecated("heartbeat-period", "ignored: the heartbeat period is the cluster's; change it with apiaryctl swarm update --dispatcher-heartbeat")
}
