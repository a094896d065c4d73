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
