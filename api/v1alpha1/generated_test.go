package v1alpha1_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/presencekit/presence-operator/internal/needs"
)

// controllerGenVersion must match CONTROLLER_TOOLS_VERSION in the Makefile.
const controllerGenVersion = "v0.23.0"

// TestGeneratedFilesAreFresh runs `make generate manifests` on a copy of the
// sources and fails when the committed deepcopy code, CRDs or ClusterRole
// differ from what it produces: generated files are never edited by hand
// and never left stale.
func TestGeneratedFilesAreFresh(t *testing.T) {
	gen := os.Getenv("CONTROLLER_GEN")
	if gen == "" {
		gen = filepath.Join(repoRoot, "bin", "controller-gen-"+controllerGenVersion)
	}
	gen, err := filepath.Abs(gen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(gen); err != nil {
		needs.Missing(t, fmt.Sprintf("needs controller-gen, not found at %s (CONTROLLER_GEN): run `make test-operator`, which builds it", gen))
	}

	tmp := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum", "Makefile"} {
		copyFile(t, filepath.Join(repoRoot, f), filepath.Join(tmp, f))
	}
	// The generators read the Go sources of api/ (types, markers) and
	// controllers/ (RBAC markers), which must compile with the packages
	// they import (internal/, gateway/config); tests are not part of their
	// input.
	for _, dir := range []string{"api", "controllers", "internal", filepath.Join("gateway", "config")} {
		copyTree(t, filepath.Join(repoRoot, dir), filepath.Join(tmp, dir), func(p string) bool {
			return strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go")
		})
	}

	cmd := exec.Command("make", "--no-print-directory", "-C", tmp, "generate", "manifests", "CONTROLLER_GEN="+gen)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make generate manifests in a copy of the sources: %v\n%s", err, out)
	}

	committed := generatedFiles(t, repoRoot)
	fresh := generatedFiles(t, tmp)
	var stale []string
	for _, f := range unionKeys(committed, fresh) {
		a, b := committed[f], fresh[f]
		switch {
		case a == nil:
			stale = append(stale, f+": generated but not committed")
		case b == nil:
			stale = append(stale, f+": committed but no longer generated")
		case !bytes.Equal(a, b):
			stale = append(stale, f+": differs from the generator's output ("+firstDiff(a, b)+")")
		}
	}
	if len(stale) > 0 {
		t.Fatalf("generated files are stale; run `make generate manifests` and commit the result:\n  %s", strings.Join(stale, "\n  "))
	}
}

// generatedFiles reads the files the generators own under root.
func generatedFiles(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	paths := []string{filepath.Join("api", "v1alpha1", "zz_generated.deepcopy.go"), filepath.Join("config", "rbac", "role.yaml")}
	crds, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range crds {
		rel, _ := filepath.Rel(root, c)
		paths = append(paths, rel)
	}
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		files[p] = b
	}
	return files
}

func unionKeys(a, b map[string][]byte) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// firstDiff describes the first differing line of two files.
func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: committed %q, generated %q", i+1, x, y)
		}
	}
	return "same lines, different bytes"
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, from, to string, keep func(string) bool) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !keep(p) {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		copyFile(t, p, filepath.Join(to, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
