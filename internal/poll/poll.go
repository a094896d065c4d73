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
