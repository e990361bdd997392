//go:build unix

package process

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
)

// fileController is a controller of an exited task whose output files are
// in dir, for reading logs without a process.
func fileController(dir string, backups int) *controller {
	return &controller{e: &Executor{cfg: Config{LogMaxBackups: backups}}, dir: dir, state: stateExited}
}

func streamString(t *testing.T, c *controller, opts executor.LogOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.streamLogs(context.Background(), c.openBackups(), openOrNil(c.logPath()), opts, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func openOrNil(path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	return f
}

func TestLogWriterRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, logFile)
	w, err := openLogWriter(path, 1000, 2)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := range 500 {
		line := fmt.Sprintf("line %d\n", i)
		want.WriteString(line)
		// Write in odd pieces: lines split across writes get one stamp.
		for _, piece := range []string{line[:3], line[3:]} {
			if _, err := w.Write([]byte(piece)); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.Close()
	for _, name := range []string{logFile, logFile + ".1", logFile + ".2"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1000 {
			t.Errorf("%s is %d bytes, over the 1000 cap", name, fi.Size())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, logFile+".3")); !os.IsNotExist(err) {
		t.Errorf("a third backup exists: %v", err)
	}
	got := streamString(t, fileController(dir, 2), executor.LogOptions{})
	if !strings.HasSuffix(want.String(), got) || !strings.HasSuffix(got, "line 499\n") || len(got) < 500 {
		t.Errorf("logs are not the last %d bytes of the output: %q", len(got), got)
	}
	if first, _, _ := strings.Cut(got, "\n"); !strings.HasPrefix(first, "line ") {
		t.Errorf("logs start mid-line: %q", first)
	}
}

func TestLogWriterLongLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, logFile)
	w, err := openLogWriter(path, 4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A line longer than cap and slack is rotated mid-line; the bytes
	// survive exactly.
	long := bytes.Repeat([]byte("x"), maxLineSlack+8000)
	data := append(append([]byte("short\n"), long...), "\nend\n"...)
	for i := 0; i < len(data); i += 1000 {
		w.Write(data[i:min(i+1000, len(data))])
	}
	w.Close()
	if fi, _ := os.Stat(path + ".1"); fi == nil || fi.Size() > 4096+maxLineSlack+1100 {
		t.Errorf("rotated file: %v", fi)
	}
	got := streamString(t, fileController(dir, 1), executor.LogOptions{})
	if !strings.HasSuffix(string(data), got) || !strings.HasSuffix(got, "\nend\n") {
		t.Errorf("logs (%d bytes) are not the end of the output", len(got))
	}
	if got := streamString(t, fileController(dir, 1), executor.LogOptions{Tail: 1}); got != "end\n" {
		t.Errorf("Tail 1 = %q", got)
	}
}

func TestLogsSinceAndTail(t *testing.T) {
	dir := t.TempDir()
	w, err := openLogWriter(filepath.Join(dir, logFile), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 10 {
		w.now = func() time.Time { return t0.Add(time.Duration(i) * time.Second) }
		fmt.Fprintf(w, "line %d\n", i)
	}
	w.Close()
	c := fileController(dir, 1)
	for _, tc := range []struct {
		opts executor.LogOptions
		want string
	}{
		{executor.LogOptions{Since: t0.Add(7 * time.Second)}, "line 7\nline 8\nline 9\n"},
		{executor.LogOptions{Since: t0.Add(6500 * time.Millisecond)}, "line 7\nline 8\nline 9\n"},
		{executor.LogOptions{Tail: 2}, "line 8\nline 9\n"},
		{executor.LogOptions{Tail: 5, Since: t0.Add(8 * time.Second)}, "line 8\nline 9\n"},
		{executor.LogOptions{Tail: 100}, "line 0\nline 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\n"},
		{executor.LogOptions{Since: t0.Add(time.Minute)}, ""},
	} {
		if got := streamString(t, c, tc.opts); got != tc.want {
			t.Errorf("Logs(%+v) = %q, want %q", tc.opts, got, tc.want)
		}
	}
}

func TestRotationOfATask(t *testing.T) {
	e := newTestExecutor(t, Config{LogMaxSize: 4096})
	c := start(t, e, shTask("seq 1 3000"))
	waitExit(t, c, 10*time.Second)
	for _, name := range []string{logFile, logFile + ".1"} {
		fi, err := os.Stat(filepath.Join(c.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 4096 {
			t.Errorf("%s: %d bytes, over the cap", name, fi.Size())
		}
	}
	if _, err := os.Stat(filepath.Join(c.dir, logFile+".2")); !os.IsNotExist(err) {
		t.Errorf("more than one backup kept: %v", err)
	}
	got := readLogs(t, c, executor.LogOptions{})
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	first, _ := strconv.Atoi(lines[0])
	for i, l := range lines {
		if l != strconv.Itoa(first+i) {
			t.Fatalf("line %d = %q, want %d: logs are not a contiguous tail", i, l, first+i)
		}
	}
	if lines[len(lines)-1] != "3000" || first <= 1 {
		t.Errorf("logs hold %d..%s", first, lines[len(lines)-1])
	}
	if got := readLogs(t, c, executor.LogOptions{Tail: 1}); got != "3000\n" {
		t.Errorf("Tail 1 = %q", got)
	}
}

// TestFollowAcrossRotations follows a task whose output rotates many times:
// the follower sees the lines in order to the last one, and stops at the
// exit. (A follower that falls more than LogMaxBackups files behind loses
// lines, so only order and completeness at the end are checked.)
func TestFollowAcrossRotations(t *testing.T) {
	e := newTestExecutor(t, Config{LogMaxSize: 8192, LogMaxBackups: 2})
	task := shTask("while [ ! -e go ]; do sleep 0.01; done; i=0; while [ $i -lt 4000 ]; do i=$((i+1)); echo $i; done")
	c := start(t, e, task)
	rc, err := c.Logs(ctxT(t, 30*time.Second), executor.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := os.WriteFile(filepath.Join(c.dir, workDirName, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(rc)
	last, seen := 0, 0
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil || n <= last {
			t.Fatalf("line %q after %d", sc.Text(), last)
		}
		last = n
		seen++
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("follow ended with %v", err)
	}
	if last != 4000 {
		t.Errorf("follow ended at %d, want 4000", last)
	}
	t.Logf("follower saw %d of 4000 lines", seen)
	if st, err := c.Wait(ctxT(t, time.Second)); err != nil || st.ExitCode != 0 {
		t.Errorf("Wait = %+v, %v", st, err)
	}
}

func TestLogsBeforeStart(t *testing.T) {
	e := newTestExecutor(t, Config{})
	ctrl, _ := e.Controller(shTask("true"))
	c := ctrl.(*controller)
	if got := readLogs(t, c, executor.LogOptions{}); got != "" {
		t.Errorf("Logs before Start = %q", got)
	}
	if got := readLogs(t, c, executor.LogOptions{Follow: true}); got != "" {
		t.Errorf("Logs(Follow) before Start = %q", got)
	}
}
