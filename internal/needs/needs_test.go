package needs

import (
	"strings"
	"testing"
)

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{
		"": false, "false": false, "0": false, "FALSE": false,
		"true": true, "1": true, "TRUE": true, "yes": true,
	} {
		if got := inCI(v); got != want {
			t.Errorf("inCI(%q) = %v, want %v", v, got, want)
		}
	}
}

// recorder is a testing.TB that records how Missing ended it. Skip and
// Fatal stop the calling goroutine, as the real ones do.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = args[0].(string)
	panic(r)
}
func (r *recorder) Fatal(args ...any) {
	r.failed = args[0].(string)
	panic(r)
}

func missing(t *testing.T, ci string) *recorder {
	t.Setenv("CI", ci)
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != r {
				panic(p)
			}
		}()
		Missing(r, "needs a Redis Cluster: run `make test-redis`")
		t.Fatal("Missing returned instead of ending the test")
	}()
	return r
}

func TestMissingSkipsOutsideCI(t *testing.T) {
	r := missing(t, "")
	if r.failed != "" || r.skipped != "needs a Redis Cluster: run `make test-redis`" {
		t.Fatalf("skipped %q, failed %q; want a skip with the line as given", r.skipped, r.failed)
	}
}

func TestMissingFailsInCI(t *testing.T) {
	r := missing(t, "true")
	if r.skipped != "" || !strings.HasPrefix(r.failed, "needs a Redis Cluster: run `make test-redis`") {
		t.Fatalf("skipped %q, failed %q; want a failure that says how to run it", r.skipped, r.failed)
	}
	if strings.Contains(r.failed, "\n") {
		t.Fatalf("failure %q is more than one line", r.failed)
	}
}
