package charts_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestChartCopiesMatchGenerated fails when the chart's copies of what
// controller-gen generates (the CRDs and the ClusterRole's rules) differ from
// config/, so a change to the API types or RBAC markers cannot ship without
// the chart. `make helm-crds` refreshes the copies.
func TestChartCopiesMatchGenerated(t *testing.T) {
	const fix = "run `make helm-crds` and commit the result"

	generated := yamlFiles(t, filepath.Join("..", "config", "crd", "bases"))
	copied := yamlFiles(t, filepath.Join(chartDir, "files", "crds"))
	if len(generated) == 0 {
		t.Fatal("config/crd/bases has no CRDs: run the operator's `make manifests`")
	}
	if !slices.Equal(generated, copied) {
		t.Fatalf("chart CRDs %v differ from config/crd/bases %v: %s", copied, generated, fix)
	}
	for _, name := range generated {
		sameFile(t, filepath.Join("..", "config", "crd", "bases", name), filepath.Join(chartDir, "files", "crds", name), fix)
	}
	sameFile(t, filepath.Join("..", "config", "rbac", "role.yaml"), filepath.Join(chartDir, "files", "rbac", "role.yaml"), fix)
}

// yamlFiles lists the .yaml files of dir, sorted.
func yamlFiles(t *testing.T, dir string) []string {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(found))
	for _, f := range found {
		names = append(names, filepath.Base(f))
	}
	slices.Sort(names)
	return names
}

func sameFile(t *testing.T, want, got, fix string) {
	t.Helper()
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatalf("%v: %s", err, fix)
	}
	if !bytes.Equal(w, g) {
		t.Errorf("%s differs from %s: %s", got, want, fix)
	}
}
