package version

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestStringDefaults(t *testing.T) {
	want := "presence-gateway version dev, commit unknown, " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	if got := String("presence-gateway"); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

// TestLinkerSetsVersionAndCommit builds a program that prints String with
// the -X flags make images passes, and runs it: the variables must stay
// settable by the linker (plain string vars, not constants).
func TestLinkerSetsVersionAndCommit(t *testing.T) {
	const pkg = "github.com/presencekit/presence-operator/internal/version"
	bin := filepath.Join(t.TempDir(), "prog")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X "+pkg+".Version=1.2.3 -X "+pkg+".Commit=0123abcd", "./testdata/printversion")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "prog version 1.2.3, commit 0123abcd, go") {
		t.Fatalf("built with -X, the program printed %q", got)
	}
}
