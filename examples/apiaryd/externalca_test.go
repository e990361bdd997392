package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/pki/pkitest"
)

func TestParseExternalCA(t *testing.T) {
	ext := pkitest.StartExternalCA(t, "")
	dir := t.TempDir()
	root := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(root, ext.RootCertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(notPEM, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, pem, err := parseExternalCA("protocol=cfssl,url="+ext.URL+",profile=node,auth-key=env:KEY", root)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != ext.URL || got.Profile != "node" || got.AuthKey != "env:KEY" || string(pem) != string(ext.RootCertPEM) {
		t.Errorf("parsed %+v", got)
	}
	if got, _, err := parseExternalCA("", ""); got != nil || err != nil {
		t.Errorf("no flag: %+v %v", got, err)
	}
	for _, c := range []struct{ spec, root, want string }{
		{"", root, "--ca-cert: only with --external-ca"},
		{"protocol=cfssl,url=" + ext.URL, "", "--ca-cert: required"},
		{"url=" + ext.URL, root, `protocol "": only cfssl`},
		{"protocol=acme,url=x", root, `protocol "acme"`},
		{"protocol=cfssl", root, "url is required"},
		{"protocol=cfssl,url=x,colour=blue", root, `unknown key "colour"`},
		{"protocol=cfssl,url", root, `"url" is not key=value`},
		{"protocol=cfssl,url=x,cacert=" + filepath.Join(dir, "missing"), root, "cacert"},
		{"protocol=cfssl,url=x", notPEM, "--ca-cert " + notPEM},
	} {
		_, _, err := parseExternalCA(c.spec, c.root)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseExternalCA(%q, %q) = %v, want an error naming %q", c.spec, c.root, err, c.want)
		}
	}
}
