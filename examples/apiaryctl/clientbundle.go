package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/apiary-io/apiary/swarm/client"
)

// Bundle file names: what the docker CLI reads from DOCKER_CERT_PATH.
const (
	bundleCA   = "ca.pem"
	bundleCert = "cert.pem"
	bundleKey  = "key.pem"
)

// writeClientBundle asks the cluster CA for a client certificate (a key
// made here, which never leaves this machine) and writes ca.pem, cert.pem
// and key.pem (0600) into dir, made 0700 if absent. Existing files are
// not overwritten: a bundle in use is not replaced by accident.
func writeClientBundle(ctx context.Context, cl *client.Client, dir string) (string, error) {
	for _, name := range []string{bundleCA, bundleCert, bundleKey} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return "", fmt.Errorf("--client-bundle: %s exists; remove it or choose another directory", filepath.Join(dir, name))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("--client-bundle: %w", err)
		}
	}
	keyPEM, csrPEM, err := client.NewKeyAndCSR()
	if err != nil {
		return "", err
	}
	cc, err := cl.IssueClientCertificate(ctx, csrPEM, nil)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("--client-bundle: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{bundleKey, keyPEM, 0o600}, {bundleCert, cc.Certificate, 0o644}, {bundleCA, cc.CA, 0o644}} {
		if err := writeNew(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return "", fmt.Errorf("--client-bundle: %w", err)
		}
	}
	return cc.ID, nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
