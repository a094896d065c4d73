package charts_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/presencekit/presence-operator/internal/envtestenv"
	"github.com/presencekit/presence-operator/internal/gomod"
	"github.com/presencekit/presence-operator/internal/needs"
	"github.com/presencekit/presence-operator/internal/poll"
)

// apiServer is a real kube-apiserver and etcd (envtest) for one test. It runs
// no controllers: objects are stored and validated, nothing acts on them.
type apiServer struct {
	client     client.Client
	kubeconfig string // a kubeconfig file for helm
}

// kubebuilderAssets returns the directory holding kube-apiserver and etcd
// (envtestenv.Assets: $KUBEBUILDER_ASSETS, else what `make envtest` builds).
// When they are missing the test skips (fails in CI), naming the make target.
func kubebuilderAssets(t *testing.T) string {
	t.Helper()
	dir, err := envtestenv.Assets("..")
	if errors.Is(err, envtestenv.ErrNotInstalled) {
		needs.Missing(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// startAPIServer starts kube-apiserver and etcd for the test and stops them
// when it ends.
func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	helmBin(t) // every test on an API server runs helm too: skip before starting it
	assets := kubebuilderAssets(t)
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping kube-apiserver and etcd: %v", err)
		}
	})
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &apiServer{client: c, kubeconfig: kubeconfig}
}

func (a *apiServer) createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := a.client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// apply server-side applies objs (strict field validation, as apply always
// is), as a dry run when dryRun is set: the API server validates each object
// against its schema, CRD schemas and CEL rules included, and stores nothing.
func (a *apiServer) apply(objs []*unstructured.Unstructured, dryRun bool) error {
	opts := []client.ApplyOption{client.FieldOwner("chart-test"), client.ForceOwnership}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	for _, o := range objs {
		if err := a.client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(o.DeepCopy()), opts...); err != nil {
			return fmt.Errorf("%s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

// get reads the live object of o's kind, namespace and name.
func (a *apiServer) get(o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(o.GroupVersionKind())
	err := a.client.Get(context.Background(), client.ObjectKey{Namespace: o.GetNamespace(), Name: o.GetName()}, live)
	return live, err
}

// waitEstablished waits until the CRDs serve their kinds.
func (a *apiServer) waitEstablished(t *testing.T, crds []*unstructured.Unstructured) {
	t.Helper()
	for _, crd := range crds {
		poll.Eventually(t, 30*time.Second, "CRD "+crd.GetName()+" Established", func() (bool, string) {
			live, err := a.get(crd)
			if err != nil {
				return false, err.Error()
			}
			conditions, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
			for _, c := range conditions {
				if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("conditions %v", conditions)
		})
	}
}

// decodeFile decodes the objects of a YAML file.
func decodeFile(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeObjects(t, string(b))
}

// prometheus-operator's CRDs, taken from its Go module at a pinned version
// (never imported, so it stays out of go.mod): the chart's ServiceMonitor
// and PrometheusRule validate against what a real install has.
const (
	prometheusOperatorModule  = "github.com/prometheus-operator/prometheus-operator"
	prometheusOperatorVersion = "v0.85.0"
)

// monitoringCRDs returns prometheus-operator's CRDs of the given plurals
// (servicemonitors, prometheusrules, podmonitors, ...).
func monitoringCRDs(t *testing.T, plurals ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, plural := range plurals {
		p, err := gomod.File(context.Background(), prometheusOperatorModule, prometheusOperatorVersion,
			"example/prometheus-operator-crd/monitoring.coreos.com_"+plural+".yaml")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, decodeFile(t, p)...)
	}
	return out
}
