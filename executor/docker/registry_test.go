package docker_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/executortest"
	"github.com/apiary-io/apiary/internal/testutil"
)

// registry serves images on loopback with just enough of the distribution
// API for the engine to pull them (the engine trusts 127.0.0.0/8 over plain
// HTTP). Nothing leaves the machine.
type registry struct {
	srv       *httptest.Server
	blobs     map[string][]byte // digest → content
	manifests map[string][]byte // "name:tag" → manifest
	// hang lists repositories whose manifests never come.
	hang map[string]bool
	done chan struct{}
}

func newRegistry(t *testing.T) *registry {
	r := &registry{blobs: map[string][]byte{}, manifests: map[string][]byte{}, hang: map[string]bool{}, done: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		close(r.done)
		r.srv.Close()
	})
	return r
}

// host is the registry's address, the first part of its image references.
func (r *registry) host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// add publishes a one-layer image of files under name:tag, with the
// program as entrypoint and env, and returns its reference.
func (r *registry) add(t *testing.T, name, tag string, files map[string][]byte, env []string) string {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for path, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o755, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer.Bytes())
	zw.Close()
	cfg, _ := json.Marshal(map[string]any{
		"architecture": programArch,
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string{"/app"}, "Env": env},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{digest(layer.Bytes())}},
	})
	r.blobs[digest(cfg)] = cfg
	r.blobs[digest(gz.Bytes())] = gz.Bytes()
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.docker.distribution.manifest.v2+json",
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(cfg), "digest": digest(cfg)},
		"layers": []map[string]any{
			{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": gz.Len(), "digest": digest(gz.Bytes())},
		},
	})
	r.manifests[name+":"+tag] = m
	r.blobs[digest(m)] = m
	return r.host() + "/" + name + ":" + tag
}

func (r *registry) serve(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := req.URL.Path
	if p == "/v2/" || p == "/v2" {
		w.Write([]byte("{}"))
		return
	}
	p = strings.TrimPrefix(p, "/v2/")
	if i := strings.LastIndex(p, "/manifests/"); i >= 0 {
		name, ref := p[:i], p[i+len("/manifests/"):]
		if r.hang[name] {
			select {
			case <-req.Context().Done():
			case <-r.done:
			}
			return
		}
		m, ok := r.manifests[name+":"+ref]
		if !ok {
			m, ok = r.blobs[ref]
		}
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
		w.Header().Set("Docker-Content-Digest", digest(m))
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(m))
		return
	}
	if i := strings.LastIndex(p, "/blobs/"); i >= 0 {
		b, ok := r.blobs[p[i+len("/blobs/"):]]
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Docker-Content-Digest", digest(b))
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(b))
		return
	}
	http.NotFound(w, req)
}

// TestPullFromRegistry: Prepare pulls an image the engine lacks, then the
// task runs it; a registry that does not answer fails Prepare within
// PullTimeout, with the clear error.
func TestPullFromRegistry(t *testing.T) {
	t.Parallel()
	e, cfg := newExecutor(t) // builds the program too
	c := dockerClient(t)
	reg := newRegistry(t)
	repo := "apiary-test/pulled-" + executortest.NewTaskID()[:8]
	ref := reg.add(t, repo, "1", map[string][]byte{"app": program}, []string{"APP_VERSION=pulled"})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Logf("remove %s: %v", ref, err)
		}
	})
	if _, err := c.ImageInspect(ctxFor(t, 10*time.Second), ref); !cerrdefs.IsNotFound(err) {
		t.Fatalf("image %s present before the test: %v", ref, err)
	}
	task := appTask(ref, "exit", "0")
	task.Spec.Container.Command = []string{"/app", "run"}
	ctl := controller(t, e, task)
	start := time.Now()
	must(t, "Prepare (pull)", ctl.Prepare(ctxFor(t, time.Minute)))
	t.Logf("pulled %s in %v", ref, time.Since(start).Round(time.Millisecond))
	if _, err := c.ImageInspect(ctxFor(t, 10*time.Second), ref); err != nil {
		t.Fatalf("image after Prepare: %v", err)
	}
	must(t, "Start", ctl.Start(ctxFor(t, 30*time.Second)))
	testutil.EventuallyWhy(t, 10*time.Second, "the pulled program's start line", func() (bool, string) {
		rc, err := ctl.(executor.LogReader).Logs(ctxFor(t, 10*time.Second), executor.LogOptions{})
		if err != nil {
			return false, err.Error()
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return strings.Contains(string(b), "apiary-test-app pulled task="+task.ID), string(b)
	})

	// A registry that never answers: the pull gives up after PullTimeout.
	reg.hang["apiary-test/hangs"] = true
	cfg.PullTimeout = time.Second
	cfg.ClusterID += "-hang"
	slow := newExecutorWith(t, cfg)
	hangRef := reg.host() + "/apiary-test/hangs:1"
	ctl = controller(t, slow, appTask(hangRef, "run"))
	start = time.Now()
	err := ctl.Prepare(ctxFor(t, time.Minute))
	took := time.Since(start)
	want := `image "` + hangRef + `" not present on this node and pull failed: `
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Prepare from a registry that hangs = %v, want %q", err, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Prepare from a registry that hangs = %v, want it to wrap DeadlineExceeded", err)
	}
	if took > 15*time.Second {
		t.Errorf("Prepare took %v with a 1s pull timeout", took)
	}
	t.Logf("hung pull failed after %v: %v", took.Round(time.Millisecond), err)
}
