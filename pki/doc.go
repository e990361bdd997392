// Package pki gives every Apiary node a cryptographic identity and makes
// every connection between nodes mutual TLS under the cluster's own CA.
//
// # Identities
//
// The cluster root CA is created with cfssl (ECDSA P-256). A node
// certificate says who the node is and what it may do:
//
//	CN = node ID    OU = role (apiary-manager | apiary-worker)    O = cluster ID
//
// The CA writes all three, whatever the certificate request asks for, and
// signs node certificates for 90 days by default. A node keeps its key,
// certificate chain and trusted roots in <data dir>/certificates with mode
// 0600 and restarts with them (LoadNodeIdentity).
//
// # Trust model
//
// The role comes from the certificate, never from a request field. A request
// field is whatever the caller chose to write; the certificate is what the
// CA signed for that key, and the TLS handshake proves the caller holds the
// key. So the Authorizer reads the role of the verified peer certificate
// (PeerIdentity) and checks it against a per-method Policy: a worker
// certificate cannot call a manager method or join raft, however its request
// is phrased. Methods missing from the Policy are refused. Even the CA
// ignores what a renewing node says about its role: it keeps the role in
// its certificate unless the cluster (ClusterState.DesiredRole) says
// otherwise. A node removed from the cluster is refused (ErrNodeRemoved)
// while its certificate is still valid: certificates cannot be recalled,
// so the removal list is checked on every call.
//
// Joining is pinned by digest. A new node has no certificate and trusts
// nothing; its join token APTKN-1-<root digest>-<secret> carries the SHA-256
// of the root certificate. During the TLS handshake the joiner looks in the
// manager's chain for the root with that digest and verifies the manager's
// certificate against it alone; any other manager is refused before the
// handshake completes, so the secret half of the token is never sent to an
// impostor, and the roots the joiner will trust from then on are the ones
// its operator vouched for by handing out the token. The secret then
// authenticates the joiner to the CA and selects the role (worker and
// manager tokens differ); the CA assigns a fresh node ID. Tokens rotate on
// demand, and the old ones are refused at once.
//
// The root rotates through a cross-signed intermediate. Replacing the root
// outright would cut off, at the moment of the switch, every node that has
// not yet learned the new root or still holds a certificate from the old
// one. Instead the new root B is cross-signed by the old root A: leaves
// signed by B travel with that intermediate and so verify both against A
// (for nodes that have not updated yet) and against B. The trust bundle is
// {A, B} until every node holds a B leaf, then {B}. See rotation.go for the
// state machine and its invariant.
//
// Certificates renew at a random point between 50% and 80% of their life
// (Renewer), over mutual TLS with the current certificate. TLS configs read
// the current certificate and roots at each handshake (GetCertificate,
// GetClientCertificate, GetConfigForClient), so a renewal affects new
// connections only and never drops an open one.
//
// # Pieces
//
//   - CARecord: the replicated CA state (root key, rotation, token secrets),
//     kept by the swarm package in the store through ClusterState, so any
//     manager can sign; MemState is the in-memory ClusterState.
//   - CAServer: issues certificates (join or renewal), rotates tokens and
//     the root; RegisterCAService serves it over gRPC (a hand-written
//     service with a JSON codec), NewCAClient calls it.
//   - NodeIdentity: a node's key, chain and roots, with TLS configs for
//     servers and clients; Join obtains one with a token.
//   - Authorizer: gRPC interceptors enforcing a Policy.
//   - External CA mode: CSRs are forwarded to a cfssl signer (`cfssl serve`,
//     /api/v1/cfssl/sign or authsign) instead of signed locally.
//
// cfssl's own logging is routed into log/slog (SetCFSSLLogger).
package pki
