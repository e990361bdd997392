package testutil_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// recorder is a testing.TB that records Fatalf instead of stopping the
// goroutine, so a failing Eventually can be observed. Any other method of
// the embedded nil TB panics, which tells a test it relied on one.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		ready := start.Add(300 * time.Millisecond)
		r := &recorder{}
		testutil.Eventually(r, time.Second, "ready", func() bool { return !time.Now().Before(ready) })
		if r.fatal != "" {
			t.Fatalf("failed: %s", r.fatal)
		}
		// The poll interval is capped at 50ms, so the wait overshoots by less.
		if waited := time.Since(start); waited < 300*time.Millisecond || waited >= 350*time.Millisecond {
			t.Errorf("returned after %v, want within [300ms, 350ms)", waited)
		}
	})
}

func TestEventuallyFailsAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		r := &recorder{}
		calls := 0
		testutil.Eventually(r, 2*time.Second, "the moon", func() bool { calls++; return false })
		if want := "timed out after 2s waiting for the moon"; r.fatal != want {
			t.Errorf("failure = %q, want %q", r.fatal, want)
		}
		if waited := time.Since(start); waited != 2*time.Second {
			t.Errorf("gave up after %v, want exactly the 2s timeout", waited)
		}
		// Backing off from 1ms to 50ms: 1+2+...+32 = 63ms in 7 calls, then
		// (2000-63)/50 -> 39 more, and the check at the deadline.
		if calls < 40 || calls > 50 {
			t.Errorf("cond called %d times in 2s, want the backed-off ~47", calls)
		}
	})
}

func TestEventuallyChecksOnceMoreAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		deadline := time.Now().Add(time.Second)
		r := &recorder{}
		testutil.Eventually(r, time.Second, "just in time", func() bool { return !time.Now().Before(deadline) })
		if r.fatal != "" {
			t.Errorf("a condition true at the deadline failed: %s", r.fatal)
		}
	})
}

func TestEventuallyWhyReportsTheLastReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		n := 0
		testutil.EventuallyWhy(r, 100*time.Millisecond, "3 tasks running", func() (bool, string) {
			n++
			return false, fmt.Sprintf("check %d: 2 running", n)
		})
		want := fmt.Sprintf("timed out after 100ms waiting for 3 tasks running: check %d: 2 running", n)
		if r.fatal != want {
			t.Errorf("failure = %q, want %q", r.fatal, want)
		}
	})
}

func TestEventuallyChecksBeforeSleeping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		testutil.Eventually(t, time.Second, "true", func() bool { return true })
		if waited := time.Since(start); waited != 0 {
			t.Errorf("a condition that already holds waited %v", waited)
		}
	})
}

func TestEventuallyRealClock(t *testing.T) {
	// Outside a bubble: a condition another goroutine makes true.
	done := make(chan struct{})
	go func() { time.Sleep(20 * time.Millisecond); close(done) }()
	testutil.Eventually(t, 10*time.Second, "goroutine done", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
}
