package main

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/pki"
)

// FuzzParseExternalCA: --external-ca either fails with an error naming the
// flag, or gives a cfssl signer with an http(s) URL and the root certificate read
// from --ca-cert, whose fields print back to a flag that parses the same.
func FuzzParseExternalCA(f *testing.F) {
	dir := f.TempDir()
	root, err := pki.NewRootCA("fuzz-cluster")
	if err != nil {
		f.Fatal(err)
	}
	rootFile := filepath.Join(dir, "root.pem")
	caFile := filepath.Join(dir, "signer-ca.pem")
	for _, p := range []string{rootFile, caFile} {
		if err := os.WriteFile(p, root.CertPEM, 0o600); err != nil {
			f.Fatal(err)
		}
	}
	for _, s := range []string{
		"protocol=cfssl,url=https://ca.example:8888",
		"protocol=CFSSL,URL=https://ca.example:8888/,profile=node,auth-key=env:KEY",
		"protocol=cfssl,url=http://10.0.0.1:8888,auth-key=0123456789abcdef,cacert=" + caFile,
		"protocol=cfssl,url=https://x/?a=b=c",
		"protocol=acme,url=x", "protocol=cfssl", "url=x", "protocol=cfssl,url", "protocol=cfssl,url=",
		"protocol=cfssl,url=x,colour=blue", "protocol=cfssl,,url=x", "",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, spec string, withRoot bool) {
		for _, field := range strings.Split(spec, ",") {
			// Only the file written above may be read: a fuzzed path could
			// name a device that never ends.
			if k, v, _ := strings.Cut(field, "="); strings.EqualFold(k, "cacert") && v != caFile {
				return
			}
		}
		rf := ""
		if withRoot {
			rf = rootFile
		}
		ext, rootPEM, err := parseExternalCA(spec, rf)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--external-ca") && !strings.HasPrefix(err.Error(), "--ca-cert") {
				t.Fatalf("parseExternalCA(%q): error %q does not name the flag", spec, err)
			}
			return
		}
		if spec == "" {
			if ext != nil || rootPEM != nil {
				t.Fatalf("parseExternalCA without the flag gave %+v", ext)
			}
			return
		}
		if ext == nil || !bytes.Equal(rootPEM, root.CertPEM) {
			t.Fatalf("parseExternalCA(%q) = %+v, root %q", spec, ext, rootPEM)
		}
		if u, err := url.Parse(ext.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("parseExternalCA(%q) accepted url %q, which no signer answers", spec, ext.URL)
		}
		again := "protocol=cfssl,url=" + ext.URL
		for _, kv := range [][2]string{{"profile", ext.Profile}, {"auth-key", ext.AuthKey}} {
			if kv[1] != "" {
				again += "," + kv[0] + "=" + kv[1]
			}
		}
		if len(ext.CACert) > 0 {
			again += ",cacert=" + caFile
		}
		back, _, err := parseExternalCA(again, rf)
		if err != nil || !reflect.DeepEqual(back, ext) {
			t.Fatalf("parseExternalCA(%q) = %+v; printed as %q it parses to %+v, %v", spec, ext, again, back, err)
		}
	})
}
