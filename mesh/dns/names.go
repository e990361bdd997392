package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// MaxNameLength bounds a name of the cluster (service, alias, task),
// relative to the domain. A DNS name is at most 253 characters written out;
// 200 leaves room for "tasks.", an SRV prefix and a domain of up to
// MaxDomainLength.
const MaxNameLength = 200

// maxLabelLength is DNS's limit on one label (RFC 1035 §2.3.4).
const maxLabelLength = 63

// checkName checks a lower-cased relative name: dot-separated labels.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty")
	case len(name) > MaxNameLength:
		return fmt.Errorf("must be at most %d characters, got %d", MaxNameLength, len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		if err := checkLabel(label); err != nil {
			return fmt.Errorf("%q: %w", name, err)
		}
	}
	return nil
}

// checkLabel checks one label: 1 to 63 of a-z, 0-9, '-' and '_' (Docker's
// service names allow '_', which DNS names carry fine).
func checkLabel(label string) error {
	if label == "" || len(label) > maxLabelLength {
		return fmt.Errorf("a label must have 1 to %d characters, got %d", maxLabelLength, len(label))
	}
	for _, c := range []byte(label) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("label %q: only a-z, 0-9, '-' and '_' are allowed", label)
		}
	}
	return nil
}

// splitDomain lower-cases a query name (fully qualified, as on the wire) and
// says where it falls: the domain's apex, a name inside the domain (rel is
// the part before it), or a bare name outside it (rel is the whole name
// without its final dot). domain is lower-case and fully qualified.
func splitDomain(qname, domain string) (rel string, inDomain bool) {
	q := strings.ToLower(qname)
	if q == domain {
		return "", true
	}
	if strings.HasSuffix(q, "."+domain) {
		return q[:len(q)-len(domain)-1], true
	}
	return strings.TrimSuffix(q, "."), false
}

// srvName is a name of the SRV shape "_<port>._<proto>.<rest>".
type srvName struct {
	port  string // a port's name or its target port in decimal
	proto string // "tcp" or "udp"
	rest  string // "<service>" or "tasks.<service>"
}

// parseSRV splits rel if it has the SRV shape.
func parseSRV(rel string) (srvName, bool) {
	port, rest, ok := strings.Cut(rel, ".")
	if !ok || len(port) < 2 || port[0] != '_' {
		return srvName{}, false
	}
	proto, rest, ok := strings.Cut(rest, ".")
	if !ok || (proto != "_tcp" && proto != "_udp") || rest == "" {
		return srvName{}, false
	}
	return srvName{port: port[1:], proto: proto[1:], rest: rest}, true
}

// matches says whether p is the port an SRV query names.
func (n srvName) matches(p Port) bool {
	if p.Protocol != n.proto {
		return false
	}
	if p.Name != "" && p.Name == n.port {
		return true
	}
	target, err := strconv.ParseUint(n.port, 10, 16)
	return err == nil && uint16(target) == p.Target
}

// parseReverse reads the address of a reverse name ("4.3.2.1.in-addr.arpa",
// or 32 nibbles then "ip6.arpa"), lower-cased and without its final dot.
func parseReverse(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		var b [4]byte
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		for i, l := range labels {
			v, err := strconv.ParseUint(l, 10, 8)
			if err != nil || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			b[3-i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		var b [16]byte
		if len(rest) != 63 { // 32 nibbles and 31 dots
			return netip.Addr{}, false
		}
		for i := range 32 {
			c := rest[2*i]
			if i < 31 && rest[2*i+1] != '.' {
				return netip.Addr{}, false
			}
			v, err := strconv.ParseUint(string(c), 16, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			n := 31 - i // nibble index from the most significant
			b[n/2] |= byte(v) << (4 * (1 - n%2))
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
