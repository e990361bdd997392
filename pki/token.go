package pki

import (
	"crypto/subtle"
	"fmt"
	"strings"
)

// Join token format: APTKN-1-<root CA digest>-<secret>.
//
// The digest lets a joiner authenticate the manager it dials before it
// trusts anything (it pins the CA). The secret authenticates the joiner to
// the CA and selects the role: workers and managers have different secrets.
const (
	tokenPrefix  = "APTKN"
	tokenVersion = "1"
)

// JoinToken is a parsed join token.
type JoinToken struct {
	// RootDigest is the Digest of the root CA the joiner must find.
	RootDigest string
	// Secret selects the role; it is compared in constant time.
	Secret string
}

// String renders the token.
func (t JoinToken) String() string {
	return tokenPrefix + "-" + tokenVersion + "-" + t.RootDigest + "-" + t.Secret
}

// ParseJoinToken checks a token's syntax and version. It does not know
// whether the secret is current: only the CA (ValidateJoinToken) does.
func ParseJoinToken(s string) (JoinToken, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 4 || parts[0] != tokenPrefix {
		return JoinToken{}, fmt.Errorf("%w: want %s-%s-<CA digest>-<secret>", ErrTokenMalformed, tokenPrefix, tokenVersion)
	}
	if parts[1] != tokenVersion {
		return JoinToken{}, fmt.Errorf("%w: version %q, this node understands %q", ErrTokenVersion, parts[1], tokenVersion)
	}
	if len(parts[2]) != digestLen || !isBase36(parts[2]) {
		return JoinToken{}, fmt.Errorf("%w: CA digest must be %d base36 characters", ErrTokenMalformed, digestLen)
	}
	if len(parts[3]) != secretLen || !isBase36(parts[3]) {
		return JoinToken{}, fmt.Errorf("%w: secret must be %d base36 characters", ErrTokenMalformed, secretLen)
	}
	return JoinToken{RootDigest: parts[2], Secret: parts[3]}, nil
}

func isBase36(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// JoinToken returns the current token for role. During a root rotation it
// carries the old root's digest, which every manager still presents; after
// the rotation the digest changes, so tokens handed out before stop working.
func (r *CARecord) JoinToken(role Role) (string, error) {
	root, err := r.Root()
	if err != nil {
		return "", err
	}
	secret, err := r.secret(role)
	if err != nil {
		return "", err
	}
	return JoinToken{RootDigest: root.Digest, Secret: secret}.String(), nil
}

func (r *CARecord) secret(role Role) (string, error) {
	switch role {
	case RoleWorker:
		return r.WorkerSecret, nil
	case RoleManager:
		return r.ManagerSecret, nil
	}
	return "", fmt.Errorf("pki: no join token for role %q", role)
}

// RotateJoinToken replaces the secret for role; tokens with the old secret
// are refused from then on.
func (r *CARecord) RotateJoinToken(role Role) error {
	switch role {
	case RoleWorker:
		r.WorkerSecret = randomSecret()
	case RoleManager:
		r.ManagerSecret = randomSecret()
	default:
		return fmt.Errorf("pki: rotate join token: no token for role %q", role)
	}
	return nil
}

// ValidateJoinToken returns the role a token grants, or an error saying
// precisely what is wrong with it (malformed, version, CA, secret).
func (r *CARecord) ValidateJoinToken(token string) (Role, error) {
	t, err := ParseJoinToken(token)
	if err != nil {
		return "", err
	}
	digests, err := r.trustedDigests()
	if err != nil {
		return "", err
	}
	known := false
	for _, d := range digests {
		known = known || d == t.RootDigest
	}
	if !known {
		return "", fmt.Errorf("%w: token pins CA %s…, this cluster's root is %s…", ErrTokenWrongCA, t.RootDigest[:12], digests[0][:12])
	}
	// Both comparisons always run so timing does not tell which role's
	// secret was closer.
	w := subtle.ConstantTimeCompare([]byte(t.Secret), []byte(r.WorkerSecret)) == 1 && r.WorkerSecret != ""
	m := subtle.ConstantTimeCompare([]byte(t.Secret), []byte(r.ManagerSecret)) == 1 && r.ManagerSecret != ""
	switch {
	case m:
		return RoleManager, nil
	case w:
		return RoleWorker, nil
	}
	return "", ErrTokenInvalid
}
