// Package needs is what a test does when a component that `make test`
// provides is missing: a Redis Cluster, kube-apiserver and etcd (envtest),
// helm, controller-gen, Node.js. Outside CI the test is skipped with one line
// that names the make target that runs it, so that a newcomer's first
// `go test ./...` passes; with CI=true (.ci/run sets it) the test fails with
// the same line, so that a CI run never passes by skipping.
package needs

import (
	"os"
	"strconv"
	"testing"
)

// CI reports whether the environment says this is a CI run: CI set to
// anything but a false value ("", "0", "false").
func CI() bool { return inCI(os.Getenv("CI")) }

func inCI(v string) bool {
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b // an unrecognised value counts as CI: failing is the safe side
}

// Missing ends tb because something it needs is missing: how says, in one
// line, what is missing and which make target runs the test with it, for
// example "needs a Redis Cluster: run `make test-redis`". It skips outside
// CI and fails in CI.
func Missing(tb testing.TB, how string) {
	tb.Helper()
	if CI() {
		tb.Fatal(how + " (CI is set: a missing dependency fails the run)")
	}
	tb.Skip(how)
}
