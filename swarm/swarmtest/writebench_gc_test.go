//go:build linux

package swarmtest_test

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The garbage collector's CPU per write, per role. The daemons run with
// GODEBUG=gctrace=1, which prints a line per collection to their log,
// with the CPU each phase took; gcCPU sums them. A collection counts in
// the window it ended in, so with a large heap (a cycle every ~3 s on the
// leader at store=100k, every 5-10 s on a follower) a short run's figure
// moves by a cycle's worth: run 60,000 writes or more there. Why it is worth the trouble: at store=100k the
// collector is the difference between the two figures of issue 14, and
// unlike the total it is hardly moved by the host's speed.

// gcEnv returns env with gctrace=1 added to GODEBUG (or GODEBUG set),
// keeping any other GODEBUG setting.
func gcEnv(env []string) []string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "GODEBUG="); ok {
			out := append([]string(nil), env...)
			out[i] = "GODEBUG=gctrace=1"
			if v != "" {
				out[i] += "," + v
			}
			return out
		}
	}
	return append(env, "GODEBUG=gctrace=1")
}

// gcLine matches a gctrace line's CPU times:
// "gc 12 @4.193s 0%: 0.63+3.8+0.20 ms clock, 1.2+0/2.1/3.6+0.40 ms cpu, ..."
// (sweep termination, then the mark's assists, background and idle
// workers, then mark termination).
var gcLine = regexp.MustCompile(`(?m)^gc \d+ @[\d.]+s \d+%: [^,]* ms clock, ([\d.]+)\+([\d.]+)/([\d.]+)/([\d.]+)\+([\d.]+) ms cpu`)

// gcTrace is the part of a daemon's log read so far and the CPU its
// collections took in it.
type gcTrace struct {
	off int64
	cpu time.Duration
}

// gcCPU returns the CPU the daemon's collections have taken so far, as
// its log reports them, reading what was added since the last call (up
// to its last complete line).
func (d *daemon) gcCPU() time.Duration {
	f, err := os.Open(d.logPath)
	if err != nil {
		return d.gc.cpu
	}
	defer f.Close()
	if _, err := f.Seek(d.gc.off, io.SeekStart); err != nil {
		return d.gc.cpu
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return d.gc.cpu
	}
	end := bytes.LastIndexByte(b, '\n') + 1
	d.gc.off += int64(end)
	d.gc.cpu += sumGC(b[:end])
	return d.gc.cpu
}

// sumGC adds up the CPU of the gctrace lines in b.
func sumGC(b []byte) time.Duration {
	var total float64
	for _, m := range gcLine.FindAllSubmatch(b, -1) {
		for _, f := range m[1:] {
			ms, err := strconv.ParseFloat(string(f), 64)
			if err == nil {
				total += ms
			}
		}
	}
	return time.Duration(total * float64(time.Millisecond))
}

// withoutGCTrace drops the gctrace lines from a log's text.
func withoutGCTrace(s string) string {
	var out strings.Builder
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(line, "gc ") {
			out.WriteString(line)
		}
	}
	return out.String()
}

// The benchmark's reading of the daemons' gctrace lines: every phase's
// CPU is counted, other lines are not, and GODEBUG keeps its settings.
func TestSumGCReadsGCTraceLines(t *testing.T) {
	log := "apiaryd: node x running as manager\n" +
		"gc 12 @4.193s 0%: 0.63+3.8+0.20 ms clock, 1.2+0/2.1/3.6+0.40 ms cpu, 25->25->14 MB, 29 MB goal, 0 MB stacks, 0 MB globals, 2 P\n" +
		"time=... level=WARN msg=\"gc 1 @1s 0%: 1+1+1 ms clock, 9+9/9/9+9 ms cpu\"\n" +
		"gc 55 @26.508s 9%: 5.2+874+0.009 ms clock, 10+67/439/87+0.018 ms cpu, 464->525->291 MB, 545 MB goal, 0 MB stacks, 0 MB globals, 2 P\n"
	want := time.Duration((1.2 + 0 + 2.1 + 3.6 + 0.40 + 10 + 67 + 439 + 87 + 0.018) * float64(time.Millisecond))
	if got := sumGC([]byte(log)); got != want {
		t.Errorf("sumGC = %v, want %v", got, want)
	}
	if got := withoutGCTrace(log); got != "apiaryd: node x running as manager\ntime=... level=WARN msg=\"gc 1 @1s 0%: 1+1+1 ms clock, 9+9/9/9+9 ms cpu\"\n" {
		t.Errorf("withoutGCTrace kept %q", got)
	}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"HOME=/root"}, "GODEBUG=gctrace=1"},
		{[]string{"GODEBUG=madvdontneed=1", "GOGC=200"}, "GODEBUG=gctrace=1,madvdontneed=1"},
		{[]string{"GODEBUG="}, "GODEBUG=gctrace=1"},
	} {
		if env := gcEnv(c.env); !slices.Contains(env, c.want) || len(env) < len(c.env) {
			t.Errorf("gcEnv(%q) = %q, want it to hold %q", c.env, env, c.want)
		}
	}
}
