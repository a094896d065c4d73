package charts_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/presencekit/presence-operator/internal/needs"
)

// The chart under test and the release the tests render or install.
const (
	chartDir    = "presence-operator"
	releaseName = "presence-operator" // so the objects are named presence-operator, not presence-operator-presence-operator
	releaseNS   = "presence-system"
)

// helmTimeout bounds every helm command.
const helmTimeout = 3 * time.Minute

// helmHome isolates helm's cache, config and data from the user's, and holds
// a kubeconfig that points nowhere for the commands that need no cluster.
var helmHome string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chart-test-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helmHome = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// helmBin returns the helm binary to test with: $HELM, else the bin/helm-*
// that `make helm` builds. When there is none the test skips (fails in CI),
// naming the make target.
func helmBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("HELM=%s: %v (run `make test-helm`, which builds it)", p, err)
		}
		return p
	}
	found, _ := filepath.Glob(filepath.Join("..", "bin", "helm-v*"))
	if len(found) == 0 {
		needs.Missing(t, "needs helm, not in bin/ (HELM): run `make test-helm`, which builds it and runs these tests")
	}
	sort.Strings(found)
	p, err := filepath.Abs(found[len(found)-1])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runHelm runs helm with args and returns its standard output; the error
// carries its standard error. kubeconfig may be empty for commands that need
// no cluster (template, lint): they then see a kubeconfig that does not exist,
// never the user's.
func runHelm(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	if kubeconfig == "" {
		kubeconfig = filepath.Join(helmHome, "no-cluster.kubeconfig")
	}
	ctx, cancel := context.WithTimeout(context.Background(), helmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBin(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
		"KUBECONFIG="+kubeconfig,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// mustHelm is runHelm that fails the test on error.
func mustHelm(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	out, err := runHelm(t, kubeconfig, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// render runs `helm template` on the chart with extra arguments (--set ...)
// and decodes the objects it prints.
func render(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	base := []string{"template", releaseName, chartDir, "--namespace", releaseNS}
	return decodeObjects(t, mustHelm(t, "", append(base, args...)...))
}

// decodeObjects splits helm's multi-document output into objects, skipping
// empty documents.
func decodeObjects(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifests)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("reading rendered manifests: %v", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("rendered document is not YAML: %v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue // an empty document (a template that rendered nothing, or comments only)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the rendered objects of a kind.
func find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the single rendered object of a kind, failing otherwise.
func one(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	found := find(objs, kind)
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, rendered %d (kinds: %v)", kind, len(found), kinds(objs))
	}
	return found[0]
}

// named returns the object of kind and name (in any namespace), nil when there is none.
func named(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range find(objs, kind) {
		if o.GetName() == name {
			return o
		}
	}
	return nil
}

// namedIn returns the object of kind and name in namespace, nil when there is none.
func namedIn(objs []*unstructured.Unstructured, kind, name, namespace string) *unstructured.Unstructured {
	for _, o := range find(objs, kind) {
		if o.GetName() == name && o.GetNamespace() == namespace {
			return o
		}
	}
	return nil
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

// readYAML decodes a YAML file of the repository into a generic map.
func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// appVersion is the chart's appVersion, the default tag of both images.
func appVersion(t *testing.T) string {
	t.Helper()
	v, _ := readYAML(t, filepath.Join(chartDir, "Chart.yaml"))["appVersion"].(string)
	if v == "" {
		t.Fatal("Chart.yaml has no appVersion")
	}
	return v
}
