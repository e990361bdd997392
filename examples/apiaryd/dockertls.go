package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"

	"github.com/apiary-io/apiary/swarm/client"
)

// errDockerTLSNotBuilt: the TCP listener with mutual TLS needs its
// certificate issued by the cluster CA through the control API
// (pki.CAServer.IssueClientCertificate is in place; the control method
// and `apiaryctl swarm ca --client-bundle` are not built yet).
var errDockerTLSNotBuilt = errors.New("the Docker API's TCP listener with mutual TLS is not built yet: use --docker-api (DATA_DIR/docker.sock)")

// dockerTLS is the TCP listener's TLS configuration.
func dockerTLS(ctx context.Context, cl *client.Client, dataDir, hostname string, addrs []string, log *slog.Logger) (*tls.Config, error) {
	return nil, errDockerTLSNotBuilt
}
