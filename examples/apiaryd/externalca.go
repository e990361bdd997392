package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/apiary-io/apiary/pki"
)

// parseExternalCA reads Docker's --external-ca syntax,
// "protocol=cfssl,url=URL[,profile=NAME][,auth-key=KEY][,cacert=FILE]"
// (cacert verifies the signer's HTTPS certificate), with --ca-cert naming
// the cluster's root certificate (PEM) whose key the signer holds.
func parseExternalCA(spec, rootFile string) (*pki.ExternalCA, []byte, error) {
	if spec == "" {
		if rootFile != "" {
			return nil, nil, errors.New("--ca-cert: only with --external-ca (the cluster's own CA makes its root)")
		}
		return nil, nil, nil
	}
	ext := &pki.ExternalCA{}
	protocol := ""
	for _, field := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok || v == "" {
			return nil, nil, fmt.Errorf("--external-ca: %q is not key=value", field)
		}
		switch strings.ToLower(k) {
		case "protocol":
			protocol = strings.ToLower(v)
		case "url":
			ext.URL = v
		case "profile":
			ext.Profile = v
		case "auth-key":
			ext.AuthKey = v
		case "cacert":
			b, err := os.ReadFile(v)
			if err != nil {
				return nil, nil, fmt.Errorf("--external-ca: cacert: %w", err)
			}
			ext.CACert = b
		default:
			return nil, nil, fmt.Errorf("--external-ca: unknown key %q (protocol, url, profile, auth-key, cacert)", k)
		}
	}
	if protocol != "cfssl" {
		return nil, nil, fmt.Errorf("--external-ca: protocol %q: only cfssl is supported", protocol)
	}
	if ext.URL == "" {
		return nil, nil, errors.New("--external-ca: url is required")
	}
	if rootFile == "" {
		return nil, nil, errors.New("--ca-cert: required with --external-ca: the root certificate the external CA signs under")
	}
	root, err := os.ReadFile(rootFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--ca-cert: %w", err)
	}
	if _, err := pki.ParseRootCA(root, nil); err != nil {
		return nil, nil, fmt.Errorf("--ca-cert %s: %w", rootFile, err)
	}
	if u, err := url.Parse(ext.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Found by FuzzParseExternalCA: "url=x" was accepted, and every
		// certificate request then failed.
		return nil, nil, fmt.Errorf("--external-ca: url %q: want the signer's http:// or https:// address", ext.URL)
	}
	return ext, root, nil
}
