package proxyproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

func TestAppendThenReadRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name     string
		t        Transport
		src, dst string
		wantLen  int
	}{
		{"ipv4 tcp", Stream, "192.0.2.7:40000", "127.0.0.1:8080", fixedLen + ipv4Len},
		{"ipv6 udp", Dgram, "[2001:db8::1]:53000", "[::1]:53", fixedLen + ipv6Len},
		{"mapped ipv4 written as ipv4", Stream, "[::ffff:10.0.0.1]:1", "[::ffff:10.0.0.2]:2", fixedLen + ipv4Len},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
			b, err := Append(nil, tc.t, src, dst)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tc.wantLen {
				t.Fatalf("header is %d bytes, want %d", len(b), tc.wantLen)
			}
			r := bytes.NewReader(append(b, "payload"...))
			h, err := Read(r)
			if err != nil {
				t.Fatal(err)
			}
			want := Header{Command: Proxy, Transport: tc.t,
				Source:      netip.AddrPortFrom(src.Addr().Unmap(), src.Port()),
				Destination: netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())}
			if h != want {
				t.Fatalf("read %+v, want %+v", h, want)
			}
			if rest, _ := io.ReadAll(r); string(rest) != "payload" {
				t.Fatalf("after the header the stream holds %q, want %q (Read must not read ahead)", rest, "payload")
			}
		})
	}
}

// The IPv4 example of the spec, byte for byte: PROXY, TCP4,
// 192.168.0.1:56324 -> 192.168.0.11:443.
func TestAppendMatchesTheSpecLayout(t *testing.T) {
	b, err := Append(nil, Stream, netip.MustParseAddrPort("192.168.0.1:56324"), netip.MustParseAddrPort("192.168.0.11:443"))
	if err != nil {
		t.Fatal(err)
	}
	want := "0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "c0a80001" + "c0a8000b" + "dc04" + "01bb"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("header\n got %s\nwant %s", got, want)
	}
}

func TestReadSkipsTLVsAndIgnoresLocalAddresses(t *testing.T) {
	b, _ := Append(nil, Stream, netip.MustParseAddrPort("10.1.2.3:1000"), netip.MustParseAddrPort("10.3.2.1:80"))
	// Grow the address block by a 5-byte TLV (PP2_TYPE_AUTHORITY "ab").
	b[15] += 5
	b = append(b, 0x02, 0x00, 0x02, 'a', 'b')
	h, err := Read(bytes.NewReader(append(b, 'x')))
	if err != nil {
		t.Fatal(err)
	}
	if h.Source.String() != "10.1.2.3:1000" {
		t.Fatalf("source %s, want 10.1.2.3:1000", h.Source)
	}

	local := append(signature[:], 0x20, 0x00, 0x00, 0x00)
	h, err = Read(bytes.NewReader(local))
	if err != nil {
		t.Fatal(err)
	}
	if h.Command != Local || h.Source.IsValid() {
		t.Fatalf("LOCAL header read as %+v, want command Local and no addresses", h)
	}
}

func TestReadRefusesMalformedHeaders(t *testing.T) {
	good, _ := Append(nil, Stream, netip.MustParseAddrPort("10.1.2.3:1000"), netip.MustParseAddrPort("10.3.2.1:80"))
	mod := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"http request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "no PROXY protocol v2 signature"},
		{"version 1", mod(12, 0x11), "version 1"},
		{"unknown command", mod(12, 0x2F), "command 0xf"},
		{"unknown transport", mod(13, 0x13), "transport 0x3"},
		{"unknown family", mod(13, 0x41), "address family 0x4"},
		{"short address block", mod(15, 4), "with 4 address bytes, want at least 12"},
		{"truncated", good[:20], "reading 12 address bytes"},
		{"empty", nil, "reading the header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := Read(strings.NewReader("GET / HTTP/1.1\r\n\r\n")); !errors.Is(err, ErrNotProxy) {
		t.Fatalf("err = %v, want ErrNotProxy", err)
	}
}

func TestAppendRefusesBadInput(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:1")
	if _, err := Append(nil, Unspec, a, a); err == nil || !strings.Contains(err.Error(), "transport") {
		t.Fatalf("Unspec transport: err = %v, want one naming the transport", err)
	}
	if _, err := Append(nil, Stream, netip.AddrPort{}, a); err == nil || !strings.Contains(err.Error(), "both must be set") {
		t.Fatalf("unset source: err = %v, want one saying both must be set", err)
	}
}

// FuzzRead: any input is either refused or parsed into a header that
// Append writes back and Read reads again the same.
func FuzzRead(f *testing.F) {
	good, _ := Append(nil, Stream, netip.MustParseAddrPort("10.1.2.3:1000"), netip.MustParseAddrPort("10.3.2.1:80"))
	six, _ := Append(nil, Dgram, netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[::1]:2"))
	f.Add(good)
	f.Add(six)
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := Read(bytes.NewReader(in))
		if err != nil || h.Command != Proxy || !h.Source.IsValid() || h.Transport == Unspec {
			return
		}
		b, err := Append(nil, h.Transport, h.Source, h.Destination)
		if err != nil {
			t.Fatalf("Append of a read header %+v: %v", h, err)
		}
		h2, err := Read(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("re-reading: %v", err)
		}
		if unmap(h2) != unmap(h) {
			t.Fatalf("round trip %+v -> %+v", h, h2)
		}
	})
}

func unmap(h Header) Header {
	h.Source = netip.AddrPortFrom(h.Source.Addr().Unmap(), h.Source.Port())
	h.Destination = netip.AddrPortFrom(h.Destination.Addr().Unmap(), h.Destination.Port())
	return h
}
