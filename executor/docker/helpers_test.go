package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/apiary-io/apiary/executor/docker"
	"github.com/apiary-io/apiary/executor/executortest"
	"github.com/apiary-io/apiary/swarm/api"
)

// The test images: FROM scratch with the static test program
// (testdata/app) as their entrypoint. They differ in APP_VERSION (unset, so
// "v1", and "v2"), which the program prints when it starts. Each run tags
// its own (two runs on one engine would otherwise remove each other's
// images at exit), unless it keeps them for the next run.
var imageV1, imageV2 = imageTags()

func imageTags() (string, string) {
	run := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if os.Getenv(keepImagesEnv) == "1" {
		run = "kept"
	}
	return "apiary-test/app:v1-" + run, "apiary-test/app:v2-" + run
}

const (
	// hashLabel holds the SHA-256 of the program in an image, so a run
	// reuses images of the same program instead of building them again.
	hashLabel = "io.apiary.test.hash"
	// testClusterPrefix starts the ClusterID of every executor the tests
	// make: their containers are found by it and removed.
	testClusterPrefix = "apiary-dockertest-"
	// all stands for every test cluster in removeContainers.
	all = "*"
	// keepImagesEnv set to 1 keeps the test images after the run, so the
	// next run starts faster.
	keepImagesEnv = "APIARY_DOCKERTEST_KEEP_IMAGES"
)

var (
	cliOnce sync.Once
	cli     *client.Client
	cliErr  error

	imgOnce  sync.Once
	imgErr   error
	imgBuilt bool
	// program is the test program in the images, built for programArch.
	program     []byte
	programArch string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cli != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		removeContainers(ctx, all)
		if imgBuilt && os.Getenv(keepImagesEnv) != "1" {
			for _, ref := range []string{imageV2, imageV1} { // v2 is built on v1
				if _, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
					fmt.Fprintf(os.Stderr, "remove test image %s: %v\n", ref, err)
				}
			}
		}
		cancel()
		cli.Close()
	}
	os.Exit(code)
}

// dockerClient returns a client of the engine. Without a reachable engine
// the test is skipped, or fails under CI=true.
func dockerClient(t testing.TB) *client.Client {
	t.Helper()
	cliOnce.Do(connect)
	if cliErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker engine unreachable, and CI=true requires it: %v", cliErr)
		}
		t.Skipf("Docker engine unreachable (set DOCKER_HOST or start the daemon to run this test): %v", cliErr)
	}
	return cli
}

func connect() {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		cliErr = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		c.Close()
		cliErr = fmt.Errorf("ping %s: %w", c.DaemonHost(), err)
		return
	}
	cli = c
	// Leftovers of an earlier run that did not finish.
	removeContainers(ctx, all)
}

// removeContainers force-removes the containers of the test cluster
// cluster, or of every test cluster when cluster is all.
func removeContainers(ctx context.Context, cluster string) {
	if cluster == "" {
		return // an executor of no cluster made no container
	}
	f := filters.NewArgs(filters.Arg("label", docker.LabelCluster))
	if cluster != all {
		f = filters.NewArgs(filters.Arg("label", docker.LabelCluster+"="+cluster))
	}
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		fmt.Fprintf(os.Stderr, "list test containers: %v\n", err)
		return
	}
	for _, c := range cs {
		if !strings.HasPrefix(c.Labels[docker.LabelCluster], testClusterPrefix) {
			continue
		}
		// A conflict is a removal already in progress (an agent's).
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
			fmt.Fprintf(os.Stderr, "remove test container %s: %v\n", c.ID, err)
		}
	}
}

// testImages makes sure the test images exist, building the program and
// the images once per run (and not at all when images of the same program
// are there already).
func testImages(t testing.TB) {
	t.Helper()
	c := dockerClient(t)
	imgOnce.Do(func() { imgErr = buildImages(c) })
	if imgErr != nil {
		t.Fatalf("test images: %v", imgErr)
	}
}

func buildImages(c *client.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	arch := map[string]string{"x86_64": "amd64", "aarch64": "arm64"}[info.Architecture]
	if arch == "" {
		arch = runtime.GOARCH
	}
	dir, err := os.MkdirTemp("", "apiary-dockertest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "app")
	gocmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gocmd); err != nil {
		gocmd = "go"
	}
	cmd := exec.CommandContext(ctx, gocmd, "build", "-trimpath", "-o", bin, "./testdata/app")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the test program: %v\n%s", err, out)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	program, programArch = prog, arch
	sum := sha256.Sum256(prog)
	hash := hex.EncodeToString(sum[:])
	insp, err := c.ImageInspect(ctx, imageV1)
	if err == nil && insp.Config != nil && insp.Config.Labels[hashLabel] == hash {
		if _, err := c.ImageInspect(ctx, imageV2); err == nil {
			imgBuilt = true // an earlier run's, of the same program
			return nil
		}
	}
	// Images of another program (an earlier run's, kept) would be left
	// dangling by the new tags.
	for _, ref := range []string{imageV2, imageV1} {
		if _, err := c.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove the old %s: %w", ref, err)
		}
	}
	// Each Dockerfile instruction costs the classic builder a container
	// (most of a second here): v1 has the program, its entrypoint and the
	// hash label; v2 is v1 with another APP_VERSION.
	imgBuilt = true
	v1 := "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n"
	if err := buildImage(ctx, c, imageV1, v1, map[string]string{hashLabel: hash}, prog); err != nil {
		return fmt.Errorf("build %s: %w", imageV1, err)
	}
	v2 := "FROM " + imageV1 + "\nENV APP_VERSION=v2\n"
	if err := buildImage(ctx, c, imageV2, v2, nil, nil); err != nil {
		return fmt.Errorf("build %s: %w", imageV2, err)
	}
	return nil
}

// buildImage builds an image through the API from a tar context made here:
// the Dockerfile and, when prog is set, the program as "app".
func buildImage(ctx context.Context, c *client.Client, ref, dockerfile string, labels map[string]string, prog []byte) error {
	type file struct {
		name string
		mode int64
		data []byte
	}
	files := []file{{"Dockerfile", 0o644, []byte(dockerfile)}}
	if prog != nil {
		files = append(files, file{"app", 0o755, prog})
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := c.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{ref},
		Remove:      true,
		ForceRemove: true,
		Labels:      labels,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// testLogger logs the executor's warnings, or everything with
// APIARY_TEST_DEBUG=1, to stderr (not t.Log: monitors may log after the
// test ended).
func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("APIARY_TEST_DEBUG") == "1" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// newExecutor makes an executor of a new test cluster, with the test
// images ready. Its containers are removed at the end of the test.
func newExecutor(t testing.TB) (*docker.Executor, docker.Config) {
	t.Helper()
	c := dockerClient(t)
	testImages(t)
	cfg := docker.DefaultConfig()
	cfg.Client = c
	cfg.ClusterID = testClusterPrefix + executortest.NewTaskID()[:12]
	cfg.NodeID = "node-" + executortest.NewTaskID()[:8]
	cfg.Logger = testLogger()
	cfg.PullTimeout = 30 * time.Second
	return newExecutorWith(t, cfg), cfg
}

// newExecutorWith makes an executor of cfg, closed at the end of the test,
// when the containers of its cluster are removed too.
func newExecutorWith(t testing.TB, cfg docker.Config) *docker.Executor {
	t.Helper()
	e, err := docker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		removeContainers(ctx, cfg.ClusterID)
	})
	return e
}

// appTask is a task running the test program with args in image.
func appTask(image string, args ...string) *api.Task {
	id := executortest.NewTaskID()
	return &api.Task{
		ID:                 id,
		Name:               "dtest.1",
		ServiceID:          "svc" + id[:8],
		ServiceAnnotations: api.Annotations{Name: "dtest"},
		Slot:               1,
		Spec:               api.TaskSpec{Container: &api.ContainerSpec{Image: image, Args: args}},
	}
}

// ctxFor is a context that ends after d or with the test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// inspect returns the container of a started controller.
func inspect(t testing.TB, id string) container.InspectResponse {
	t.Helper()
	insp, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatalf("inspect container %s: %v", id, err)
	}
	return insp
}
