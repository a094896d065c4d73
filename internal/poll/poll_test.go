package poll

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and stops
// the calling goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

// run calls Eventually on f and returns once it has returned or failed.
func run(f *fatalRecorder, within time.Duration, cond func() (bool, string)) {
	defer func() {
		if r := recover(); r != nil && r != f {
			panic(r)
		}
	}()
	Eventually(f, within, "the thing", cond)
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	f := &fatalRecorder{TB: t}
	calls := 0
	run(f, 5*time.Second, func() (bool, string) {
		calls++
		return calls == 3, fmt.Sprint(calls)
	})
	if f.msg != "" || calls != 3 {
		t.Fatalf("failed with %q after %d calls; want success on the 3rd", f.msg, calls)
	}
}

func TestEventuallyFailsAfterTheDeadlineWithTheLastDescription(t *testing.T) {
	f := &fatalRecorder{TB: t}
	began := time.Now()
	run(f, 100*time.Millisecond, func() (bool, string) { return false, "still 7" })
	if took := time.Since(began); took < 100*time.Millisecond {
		t.Fatalf("gave up after %s, before the 100ms deadline", took)
	}
	if !strings.Contains(f.msg, "the thing") || !strings.Contains(f.msg, "still 7") {
		t.Fatalf("failure %q does not name what was awaited and the last state", f.msg)
	}
}

func TestWithin(t *testing.T) {
	calls := 0
	if !Within(5*time.Second, func() bool { calls++; return calls == 2 }) || calls != 2 {
		t.Fatalf("Within: %d calls; want true on the 2nd", calls)
	}
	if Within(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("Within returned true for a condition that never holds")
	}
}

func TestConsistently(t *testing.T) {
	f := &fatalRecorder{TB: t}
	calls := 0
	func() {
		defer func() {
			if r := recover(); r != nil && r != f {
				panic(r)
			}
		}()
		Consistently(f, 60*time.Millisecond, "the state", func() (bool, string) { calls++; return true, "" })
	}()
	if f.msg != "" || calls < 2 {
		t.Fatalf("Consistently over a lasting state: failure %q after %d calls", f.msg, calls)
	}
	func() {
		defer func() {
			if r := recover(); r != nil && r != f {
				panic(r)
			}
		}()
		n := 0
		Consistently(f, 5*time.Second, "the state", func() (bool, string) { n++; return n < 3, "broke at 3" })
	}()
	if !strings.Contains(f.msg, "the state") || !strings.Contains(f.msg, "broke at 3") {
		t.Fatalf("Consistently over a state that breaks: failure %q", f.msg)
	}
}
