// Package poll holds the bounded wait the tests use instead of sleeping:
// check a condition until it holds or a deadline passes.
package poll

import (
	"testing"
	"time"
)

// Interval is how often Eventually checks its condition.
const Interval = 20 * time.Millisecond

// Eventually checks cond every Interval until it holds, failing t with what
// and cond's last description once within has passed.
func Eventually(t testing.TB, within time.Duration, what string, cond func() (ok bool, last string)) {
	t.Helper()
	end := time.Now().Add(within)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("after %s: %s; last: %s", within, what, last)
		}
		time.Sleep(Interval)
	}
}

// Within checks cond every Interval until it holds (true) or within has
// passed (false), for a caller that retries something itself when the wait
// runs out.
func Within(within time.Duration, cond func() bool) bool {
	end := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(Interval)
	}
}

// Consistently checks cond every Interval for the whole of d, failing t with
// what and cond's description the first time it does not hold: for a state
// that must last (a user staying online through a failover), not one to
// wait for.
func Consistently(t testing.TB, d time.Duration, what string, cond func() (ok bool, last string)) {
	t.Helper()
	end := time.Now().Add(d)
	for {
		if ok, last := cond(); !ok {
			t.Fatalf("%s: broken after %s of %s: %s", what, d-time.Until(end), d, last)
		}
		if time.Now().After(end) {
			return
		}
		time.Sleep(Interval)
	}
}
