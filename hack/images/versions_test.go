package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// defaultRegistry is where the chart, the Makefile and the operator look
// for the images by default.
const defaultRegistry = "ghcr.io/presencekit"

// TestDefaultImagesAgree: the chart's appVersion is the version of
// everything. The chart's default images (values.yaml, tags defaulting to
// appVersion), the Makefile's OPERATOR_IMG and GATEWAY_IMG, the operator's
// default --gateway-image and the binaries' --version must all say it, or a
// default install runs a gateway of another release than its operator.
func TestDefaultImagesAgree(t *testing.T) {
	want := expect(t)
	ref := func(name string) string { return defaultRegistry + "/" + name + ":" + want.version }

	// values.yaml: the repositories, and tags left to appVersion.
	b, err := os.ReadFile(filepath.Join(repoRoot, "charts/presence-operator/values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Image        struct{ Repository, Tag string } `yaml:"image"`
		GatewayImage struct{ Repository, Tag string } `yaml:"gatewayImage"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		key, name, repository, tag string
	}{
		{"image", "presence-operator", values.Image.Repository, values.Image.Tag},
		{"gatewayImage", "presence-gateway", values.GatewayImage.Repository, values.GatewayImage.Tag},
	} {
		if v.repository != defaultRegistry+"/"+v.name {
			t.Errorf("values.yaml %s.repository = %q, want %s/%s", v.key, v.repository, defaultRegistry, v.name)
		}
		if v.tag != "" && v.tag != want.version {
			t.Errorf("values.yaml %s.tag = %q, want empty (the appVersion, %s)", v.key, v.tag, want.version)
		}
	}

	// The Makefile's defaults, without the overrides of this environment.
	cmd := exec.Command("make", "-s", "--no-print-directory", "image-refs")
	cmd.Dir = repoRoot
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); !slices.Contains([]string{"IMAGE_REGISTRY", "IMAGE_TAG", "OPERATOR_IMG", "GATEWAY_IMG", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}, k) {
			cmd.Env = append(cmd.Env, e)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make image-refs: %v\n%s", err, out)
	}
	if got, w := strings.Fields(string(out)), []string{ref("presence-operator"), ref("presence-gateway")}; !slices.Equal(got, w) {
		t.Errorf("make image-refs (OPERATOR_IMG, GATEWAY_IMG) = %q, want %q", got, w)
	}

	// The binaries of the images: --version, and the operator's default
	// gateway image (its --help shows the default of --gateway-image).
	for _, spec := range images {
		bin := extractBinary(t, spec)
		if got, prefix := runVersion(t, bin), spec.name+" version "+want.version+","; !strings.HasPrefix(got, prefix) {
			t.Errorf("%s --version = %q, want %q...", spec.name, got, prefix)
		}
		if spec.name != "presence-operator" {
			continue
		}
		help, _ := exec.Command(bin, "--help").CombinedOutput() // exits 1 after the usage
		if w := `(default "` + ref("presence-gateway") + `")`; !strings.Contains(string(help), w) {
			t.Errorf("presence-operator --help does not say --gateway-image %s; it printed:\n%s", w, help)
		}
	}
}
