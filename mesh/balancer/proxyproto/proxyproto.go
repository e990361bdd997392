// Package proxyproto writes and reads version 2 of the PROXY protocol
// (haproxy's proxy-protocol.txt, section 2.2): a binary header a proxy sends
// before the client's bytes so the server learns the client's address.
//
// The balancer writes it on services that ask for it; a task reads it with
// Read before anything else on the connection. Only what the balancer needs
// is written (the PROXY command, TCP or UDP over IPv4 or IPv6, no TLVs);
// Read accepts any well-formed version 2 header, skipping TLVs and
// reporting addresses it does not model (AF_UNIX, AF_UNSPEC) as unset.
// Version 1 (the text form) is not read: a server enabling the protocol
// should ask its proxies for version 2.
package proxyproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// signature opens every version 2 header.
var signature = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// Sizes of the fixed part and of the address blocks.
const (
	fixedLen = 16 // signature, version/command, family/transport, length
	ipv4Len  = 12 // source, destination (4 bytes each), two ports
	ipv6Len  = 36 // source, destination (16 bytes each), two ports
	unixLen  = 216
	// MaxHeaderLen bounds a header Read accepts: the fixed part and the
	// largest length its 16-bit field can give. Nothing larger is read.
	MaxHeaderLen = fixedLen + 0xFFFF
)

// Command is the header's command.
type Command byte

// Commands.
const (
	// Local: the connection was made by the proxy itself (a health check);
	// the addresses are not meaningful.
	Local Command = 0x0
	// Proxy: the connection is relayed for the client named in the header.
	Proxy Command = 0x1
)

// Transport is the relayed connection's transport.
type Transport byte

// Transports.
const (
	Unspec Transport = 0x0
	Stream Transport = 0x1 // TCP
	Dgram  Transport = 0x2 // UDP
)

// Header is a parsed version 2 header.
type Header struct {
	Command   Command
	Transport Transport
	// Source is the client's address, Destination the address it
	// connected to; both unset for Local and for families other than
	// IPv4 and IPv6.
	Source, Destination netip.AddrPort
}

// ErrNotProxy is returned by Read when the stream does not start with the
// version 2 signature.
var ErrNotProxy = errors.New("proxyproto: no PROXY protocol v2 signature")

// Append appends a PROXY command header for a connection from src to dst
// over transport t (Stream or Dgram). IPv4-mapped IPv6 addresses are
// written as IPv4; when one address is IPv4 and the other IPv6 both are
// written as IPv6 (the header has one family).
func Append(b []byte, t Transport, src, dst netip.AddrPort) ([]byte, error) {
	if t != Stream && t != Dgram {
		return b, fmt.Errorf("proxyproto: transport %#x: want Stream or Dgram", byte(t))
	}
	if !src.IsValid() || !dst.IsValid() {
		return b, fmt.Errorf("proxyproto: addresses %q -> %q: both must be set", src, dst)
	}
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	b = append(b, signature[:]...)
	b = append(b, 0x20|byte(Proxy))
	if sa.Is4() && da.Is4() {
		b = append(b, 0x10|byte(t))
		b = binary.BigEndian.AppendUint16(b, ipv4Len)
		a4, d4 := sa.As4(), da.As4()
		b = append(b, a4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, 0x20|byte(t))
		b = binary.BigEndian.AppendUint16(b, ipv6Len)
		a16, d16 := sa.As16(), da.As16()
		b = append(b, a16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	return b, nil
}

// Read reads one version 2 header from r, and not a byte more, so the
// connection can be used as it is afterwards. It returns ErrNotProxy
// (wrapped) when the signature is missing, and a descriptive error for a
// malformed header.
func Read(r io.Reader) (Header, error) {
	var fixed [fixedLen]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: reading the header: %w", err)
	}
	return parse(fixed, r)
}

func parse(fixed [fixedLen]byte, r io.Reader) (Header, error) {
	if [12]byte(fixed[:12]) != signature {
		return Header{}, ErrNotProxy
	}
	if v := fixed[12] >> 4; v != 2 {
		return Header{}, fmt.Errorf("proxyproto: version %d: want 2", v)
	}
	h := Header{Command: Command(fixed[12] & 0xF), Transport: Transport(fixed[13] & 0xF)}
	if h.Command != Local && h.Command != Proxy {
		return Header{}, fmt.Errorf("proxyproto: command %#x: want LOCAL or PROXY", byte(h.Command))
	}
	if h.Transport > Dgram {
		return Header{}, fmt.Errorf("proxyproto: transport %#x: want UNSPEC, STREAM or DGRAM", byte(h.Transport))
	}
	family := fixed[13] >> 4
	n := int(binary.BigEndian.Uint16(fixed[14:]))
	rest := make([]byte, n)
	if _, err := io.ReadFull(r, rest); err != nil {
		return Header{}, fmt.Errorf("proxyproto: reading %d address bytes: %w", n, err)
	}
	var need int
	switch family {
	case 0x0:
	case 0x1:
		need = ipv4Len
	case 0x2:
		need = ipv6Len
	case 0x3:
		need = unixLen
	default:
		return Header{}, fmt.Errorf("proxyproto: address family %#x: want UNSPEC, INET, INET6 or UNIX", family)
	}
	if n < need {
		return Header{}, fmt.Errorf("proxyproto: family %#x with %d address bytes, want at least %d", family, n, need)
	}
	if h.Command == Local {
		return h, nil // addresses, if any, are to be ignored
	}
	switch family {
	case 0x1:
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(rest[0:4])), binary.BigEndian.Uint16(rest[8:]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(rest[4:8])), binary.BigEndian.Uint16(rest[10:]))
	case 0x2:
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(rest[0:16])), binary.BigEndian.Uint16(rest[32:]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(rest[16:32])), binary.BigEndian.Uint16(rest[34:]))
	}
	return h, nil
}
