package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/client"
	"github.com/apiary-io/apiary/swarm/dockerapi"
)

// The Docker Engine API (swarm/dockerapi): `--docker-api` serves it on
// DATA_DIR/docker.sock (mode 0600: the file's permissions authenticate, as
// for the control socket and Docker's own docker.sock), `--docker-api-addr
// HOST:PORT` also on TCP with mutual TLS (dockertls.go). Both are node
// options, saved with the others.

// dockerSocketName is the Docker API's socket in the data dir.
const dockerSocketName = "docker.sock"

type dockerAPIOptions struct {
	enabled bool
	addr    string
}

func (d *dockerAPIOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&d.enabled, "docker-api", false, "serve the Docker Engine API's swarm subset on DATA_DIR/docker.sock (DOCKER_HOST=unix://DATA_DIR/docker.sock docker node ls)")
	fs.StringVar(&d.addr, "docker-api-addr", "", "also serve the Docker Engine API on HOST:PORT over mutual TLS (DOCKER_HOST=tcp://HOST:PORT DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=<apiaryctl swarm ca --client-bundle DIR>)")
}

// startDockerAPI serves the Docker API for node n until ctx ends or the
// returned function, which waits for the servers to stop, is called.
func startDockerAPI(ctx context.Context, dataDir string, o nodeOptions, n *swarm.Node, log *slog.Logger) (func(), error) {
	d := o.docker
	if !d.enabled && d.addr == "" {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	cl, err := client.Dial("unix://" + swarm.ControlSocket(dataDir))
	if err != nil {
		cancel()
		return nil, err
	}
	cl0 := cl
	defer func() {
		if cl0 != nil {
			cancel()
		}
	}()
	hostname := o.hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	addr := o.advertise
	if addr == "" {
		addr = o.listen
	}
	cfg := dockerapi.DefaultConfig()
	cfg.Backend, cfg.Logger = cl, log.With("component", "docker-api")
	cfg.Self = func() dockerapi.Self {
		return dockerapi.Self{NodeID: n.NodeID(), Hostname: hostname, Addr: addr, Manager: n.Manager() != nil, Executor: o.executor}
	}
	srv, err := dockerapi.New(cfg)
	if err != nil {
		cl.Close()
		return nil, err
	}
	var lis []net.Listener
	if d.enabled {
		l, err := swarm.ListenSocket(filepath.Join(dataDir, dockerSocketName))
		if err != nil {
			cl.Close()
			return nil, err
		}
		lis = append(lis, l)
		log.Info("Docker Engine API on a Unix socket", "socket", l.Addr().String())
	}
	if d.addr != "" {
		tlsCfg, err := dockerTLS(ctx, cl, hostname, []string{d.addr, addr}, log.With("component", "docker-api"))
		if err != nil {
			for _, l := range lis {
				l.Close()
			}
			cl.Close()
			return nil, fmt.Errorf("--docker-api-addr: %w", err)
		}
		l, err := net.Listen("tcp", d.addr)
		if err != nil {
			for _, l := range lis {
				l.Close()
			}
			cl.Close()
			return nil, fmt.Errorf("--docker-api-addr: %w", err)
		}
		lis = append(lis, tls.NewListener(l, tlsCfg))
		log.Info("Docker Engine API over mutual TLS", "addr", l.Addr().String())
	}
	done := make(chan struct{}, len(lis))
	for _, l := range lis {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := srv.Serve(ctx, l); err != nil && ctx.Err() == nil {
				log.Error("Docker Engine API stopped", "addr", l.Addr().String(), "err", err)
			}
		}()
	}
	cl0 = nil
	return func() {
		cancel()
		for range lis {
			<-done
		}
		cl.Close()
	}, nil
}
