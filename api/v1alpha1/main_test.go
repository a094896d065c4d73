package v1alpha1_test

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	"github.com/presencekit/presence-operator/internal/envtestenv"
)

// The schema tests run against a real kube-apiserver (envtest) with the
// generated CRDs installed: defaults, OpenAPI and CEL validation, and the
// scale subresource are the API server's behaviour, not ours to imitate.
var k8sClient client.Client

// restConfig reaches the same API server (discovery).
var restConfig *rest.Config

// repoRoot is the repository root, relative to this package.
var repoRoot = filepath.Join("..", "..")

func TestMain(m *testing.M) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(presencev1alpha1.AddToScheme(scheme))
	os.Exit(envtestenv.Main(m, repoRoot, func(env *envtestenv.Env) (func(), error) {
		var err error
		restConfig = env.Config
		k8sClient, err = client.New(env.Config, client.Options{Scheme: scheme})
		return nil, err
	}))
}

// requireAPIServer skips the test (fails it in CI) when there is no API
// server: its binaries are not installed.
func requireAPIServer(t *testing.T) {
	t.Helper()
	envtestenv.Require(t)
}
