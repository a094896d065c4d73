package gomod_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/presencekit/presence-operator/internal/gomod"
)

// The module the main module already depends on is in the cache, so this
// needs no network.
const (
	knownModule  = "github.com/coder/websocket"
	knownVersion = "v1.8.15"
)

func TestFile(t *testing.T) {
	p, err := gomod.File(context.Background(), knownModule, knownVersion, "go.mod")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "module "+knownModule) {
		t.Errorf("%s is not %s's go.mod:\n%s", p, knownModule, b)
	}
}

func TestErrorsNameWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	_, err := gomod.File(ctx, knownModule, knownVersion, "no/such/file.yaml")
	if err == nil || !strings.Contains(err.Error(), "has no no/such/file.yaml") {
		t.Errorf("a missing file: got %v", err)
	}
	for _, bad := range [][2]string{{"", "v1"}, {knownModule, ""}, {knownModule + "@v1", "v1"}} {
		if _, err := gomod.Dir(ctx, bad[0], bad[1]); err == nil {
			t.Errorf("Dir(%q, %q) = nil error", bad[0], bad[1])
		}
	}
}
