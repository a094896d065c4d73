package v1alpha1_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"errors"
	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	"github.com/presencekit/presence-operator/internal/envtestenv"
	"github.com/presencekit/presence-operator/internal/needs"
)

// The schema tests run against a real kube-apiserver (envtest) with the
// generated CRDs installed: defaults, OpenAPI and CEL validation, and the
// scale subresource are the API server's behaviour, not ours to imitate.
var k8sClient client.Client

// repoRoot is the repository root, relative to this package.
var repoRoot = filepath.Join("..", "..")

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(presencev1alpha1.AddToScheme(scheme))

	env, err := envtestenv.Start(repoRoot)
	if errors.Is(err, envtestenv.ErrNotInstalled) {
		envtestMissing = err.Error()
		return m.Run() // the schema tests skip (fail in CI); the others run
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	k8sClient, err = client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	return m.Run()
}

// envtestMissing says why there is no API server, when its binaries are not
// installed.
var envtestMissing string

// requireAPIServer skips the test (fails it in CI) when there is no API
// server: its binaries are not installed.
func requireAPIServer(t *testing.T) {
	t.Helper()
	if envtestMissing != "" {
		needs.Missing(t, envtestMissing)
	}
}
