package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
	"github.com/apiary-io/apiary/swarm/dockerapi"
)

// A locked manager (autolock) waits for its unlock key with its control
// socket answering unlock and status only (swarm.WaitForUnlock). With
// --docker-api, docker.sock answers meanwhile too, as a locked Docker
// manager does: /info says the node is locked, `docker swarm unlock`
// hands the key to the control socket's Unlock (a wrong key is refused and
// the wait goes on), and the rest answers that the swarm is locked. The
// TCP listener (--docker-api-addr) is not served while locked: its
// certificate comes from the cluster's CA, which a locked node cannot
// reach.

// lockedBackend answers every control call of a locked node.
type lockedBackend struct{ control.UnimplementedAPI }

func (lockedBackend) Leave(context.Context, bool) error { return control.ErrLocked }

// serveLockedDockerAPI serves docker.sock for the locked node in dataDir
// until the returned function, which waits for it to stop, is called.
func serveLockedDockerAPI(ctx context.Context, dataDir string, o nodeOptions, log *slog.Logger) (func(), error) {
	if !o.docker.enabled {
		return func() {}, nil
	}
	cl, err := client.Dial("unix://" + swarm.ControlSocket(dataDir))
	if err != nil {
		return nil, err
	}
	hostname := o.hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	cfg := dockerapi.DefaultConfig()
	cfg.Backend = lockedBackend{control.UnimplementedAPI{Err: control.ErrLocked}}
	cfg.Logger = log.With("component", "docker-api")
	cfg.Self = func() dockerapi.Self {
		self := dockerapi.Self{Hostname: hostname, Manager: true, Locked: true, Executor: o.executor}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if st, err := cl.NodeStatus(sctx); err == nil {
			self.NodeID, self.Locked = st.NodeID, st.Locked
		}
		return self
	}
	cfg.Unlock = cl.Unlock
	srv, err := dockerapi.New(cfg)
	if err != nil {
		cl.Close()
		return nil, err
	}
	l, err := swarm.ListenSocket(filepath.Join(dataDir, dockerSocketName))
	if err != nil {
		cl.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, l); err != nil && ctx.Err() == nil {
			log.Error("Docker Engine API (locked) stopped", "err", err)
		}
	}()
	log.Info("Docker Engine API on a Unix socket, answering `docker swarm unlock` while locked", "socket", l.Addr().String())
	return func() {
		cancel()
		<-done
		cl.Close()
	}, nil
}
