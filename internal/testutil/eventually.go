package testutil

import (
	"testing"
	"time"
)

// Poll intervals of Eventually: the first re-check comes soon, so a
// condition that holds a moment later costs little waiting; the interval
// then doubles up to maxPoll, so a condition that takes seconds (a Docker
// API call, a CLI run, a cluster converging) is not hammered.
const (
	firstPoll = time.Millisecond
	maxPoll   = 50 * time.Millisecond
)

// Eventually polls cond until it returns true, and fails the test with
// "timed out after <timeout> waiting for <what>" if it has not by then.
// cond is checked once more at the deadline, so a condition that becomes
// true just in time passes.
//
// Like t.Fatal it must be called from the test's own goroutine. It works
// inside a testing/synctest bubble, where its sleeps advance the fake clock.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	EventuallyWhy(t, timeout, what, func() (bool, string) { return cond(), "" })
}

// EventuallyWhy is Eventually for a condition that can say why it does not
// hold yet ("2 of 3 tasks running"); the failure message ends with the last
// such reason, which is usually what one needs to debug the timeout.
func EventuallyWhy(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	poll := firstPoll
	for {
		ok, why := cond()
		if ok {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			if why != "" {
				t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, why)
			} else {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			}
			return // t.Fatalf stops a real test; a fake TB in tests returns
		}
		time.Sleep(min(poll, left))
		poll = min(2*poll, maxPoll)
	}
}
