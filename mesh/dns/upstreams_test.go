package dns

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestReadResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "# systemd-resolved's stub, then more than glibc uses\n" +
		"search example.org\n" +
		"nameserver 127.0.0.53\n" +
		"nameserver ::1\n" +
		"nameserver fe80::1%lo\n" +
		"nameserver 192.0.2.1\n" +
		"options edns0 trust-ad\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readResolvConf(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.53:53"),
		netip.MustParseAddrPort("[::1]:53"),
		netip.MustParseAddrPort("[fe80::1%lo]:53"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("upstreams %v, want the first %d: %v", got, MaxUpstreams, want)
	}

	if got, err := readResolvConf(filepath.Join(t.TempDir(), "missing")); err != nil || got != nil {
		t.Errorf("a missing file: %v, %v; want no upstreams and no error", got, err)
	}
	if got, err := readResolvConf(""); err != nil || got != nil {
		t.Errorf("no file: %v, %v; want no upstreams and no error", got, err)
	}
	if err := os.WriteFile(path, []byte("nameserver dns.example.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readResolvConf(path); err == nil {
		t.Error("a nameserver given by name was accepted")
	}
}

func TestNeverForwardsToItself(t *testing.T) {
	ups := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:8653"),  // us
		netip.MustParseAddrPort("127.0.0.1:53"),    // another port
		netip.MustParseAddrPort("127.0.0.53:8653"), // another address
		netip.MustParseAddrPort("192.0.2.1:53"),
	}
	got := withoutSelf(ups, netip.MustParseAddrPort("127.0.0.1:8653"))
	if want := ups[1:]; !slices.Equal(got, want) {
		t.Errorf("listening on 127.0.0.1:8653: kept %v, want %v", got, want)
	}
	// Listening on every address, any loopback or unspecified address at
	// our port is us.
	got = withoutSelf(ups, netip.MustParseAddrPort("0.0.0.0:8653"))
	if want := []netip.AddrPort{ups[1], ups[3]}; !slices.Equal(got, want) {
		t.Errorf("listening on 0.0.0.0:8653: kept %v, want %v", got, want)
	}
	got = withoutSelf([]netip.AddrPort{netip.MustParseAddrPort("[::1]:8653"), netip.MustParseAddrPort("0.0.0.0:8653")}, netip.MustParseAddrPort("[::]:8653"))
	if len(got) != 0 {
		t.Errorf("listening on [::]:8653: kept %v, want none", got)
	}
}
