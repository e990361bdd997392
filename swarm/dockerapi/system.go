package dockerapi

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"

	"github.com/apiary-io/apiary/swarm/api"
)

// Version is what /version reports as the engine's version.
const Version = "apiary"

// swarmHeader is the Swarm header of /_ping: the node's state and role.
func swarmHeader(self Self) string {
	switch {
	case self.NodeID == "":
		return string(swarm.LocalNodeStateInactive)
	case self.Manager:
		return "active/manager"
	}
	return "active/worker"
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Swarm", swarmHeader(s.cfg.Self()))
	h.Set("Builder-Version", "")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		return nil
	}
	_, err := w.Write([]byte("OK"))
	return err
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	v := types.Version{
		Platform:      struct{ Name string }{"Apiary"},
		Components:    []types.ComponentVersion{{Name: "Engine", Version: Version, Details: map[string]string{"ApiVersion": APIVersion, "MinAPIVersion": MinAPIVersion, "Os": runtime.GOOS, "Arch": runtime.GOARCH, "GoVersion": runtime.Version()}}},
		Version:       Version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		GoVersion:     runtime.Version(),
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		BuildTime:     "",
	}
	return writeJSON(w, http.StatusOK, v)
}

// swarmInfo is the Swarm section of /info: the node, and on a manager the
// cluster and its counts.
func (s *Server) swarmInfo(r *http.Request) swarm.Info {
	self := s.cfg.Self()
	info := swarm.Info{NodeID: self.NodeID, NodeAddr: hostOf(self.Addr), LocalNodeState: swarm.LocalNodeStateInactive}
	if self.NodeID == "" {
		return info
	}
	if self.Locked {
		info.LocalNodeState = swarm.LocalNodeStateLocked
		info.ControlAvailable = true
		return info
	}
	info.LocalNodeState = swarm.LocalNodeStateActive
	info.ControlAvailable = self.Manager
	for _, m := range self.Managers {
		info.RemoteManagers = append(info.RemoteManagers, swarm.Peer{Addr: m})
	}
	if !self.Manager {
		return info
	}
	ctx := r.Context()
	if nodes, err := s.cfg.Backend.ListNodes(ctx); err == nil {
		info.Nodes = len(nodes)
		info.RemoteManagers = nil
		for _, n := range nodes {
			if n.ManagerStatus != nil {
				info.Managers++
				info.RemoteManagers = append(info.RemoteManagers, swarm.Peer{NodeID: n.ID, Addr: n.ManagerStatus.Addr})
			}
		}
	} else {
		info.Error = err.Error()
	}
	if c, err := s.cfg.Backend.GetCluster(ctx); err == nil {
		ci := clusterInfo(c)
		if rot, err := s.cfg.Backend.RootCAStatus(ctx); err == nil {
			ci.RootRotationInProgress = rot.InProgress
		}
		info.Cluster = &ci
	} else if info.Error == "" {
		info.Error = err.Error()
	}
	return info
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	self := s.cfg.Self()
	info := system.Info{
		ID:                 self.NodeID,
		Name:               self.Hostname,
		OperatingSystem:    "Apiary (" + self.Executor + " executor)",
		OSType:             runtime.GOOS,
		Architecture:       runtime.GOARCH,
		NCPU:               runtime.NumCPU(),
		ServerVersion:      Version,
		Driver:             "none",
		LoggingDriver:      "none",
		IndexServerAddress: "https://index.docker.io/v1/",
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		Swarm:              s.swarmInfo(r),
		DefaultRuntime:     self.Executor,
	}
	return writeJSON(w, http.StatusOK, info)
}

// containers answers an empty list: Apiary's tasks are not the node's
// containers, and tools that list containers (Portainer, `docker ps`)
// should see none rather than fail.
func (s *Server) containers(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, []struct{}{})
}

// distribution answers 404 as an engine that reaches no registry does:
// the CLI then creates the service with the image as given, unpinned
// (Apiary's nodes resolve images themselves).
func (s *Server) distribution(w http.ResponseWriter, r *http.Request) error {
	return errNotFound(fmt.Errorf("image %s: no registry is reachable from this manager (Apiary does not query registries): the image is used as given", r.PathValue("name")))
}

// hostOf is the host part of host:port, or addr as it is.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// errAlreadyInSwarm is Docker's answer to init or join on a node in a
// swarm: every node serving this API is in one.
var errAlreadyInSwarm = errUnavailable(errors.New("This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one."))

// clusterInfo maps the cluster object.
func clusterInfo(c *api.Cluster) swarm.ClusterInfo {
	limit := c.Spec.Orchestration.TaskHistoryRetentionLimit
	return swarm.ClusterInfo{
		ID:   c.ID,
		Meta: meta(c.Meta),
		Spec: swarm.Spec{
			Annotations:      swarm.Annotations{Name: c.Spec.Name, Labels: c.Spec.Labels},
			Orchestration:    swarm.OrchestrationConfig{TaskHistoryRetentionLimit: &limit},
			Dispatcher:       swarm.DispatcherConfig{HeartbeatPeriod: c.Spec.Dispatcher.HeartbeatPeriod},
			CAConfig:         swarm.CAConfig{NodeCertExpiry: c.Spec.CAConfig.NodeCertExpiry},
			EncryptionConfig: swarm.EncryptionConfig{AutoLockManagers: c.Spec.EncryptionConfig.AutoLockManagers},
		},
		DefaultAddrPool: c.Spec.Network.Pools(),
		SubnetSize:      uint32(c.Spec.Network.Size()),
	}
}
