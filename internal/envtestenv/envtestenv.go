// Package envtestenv starts the control plane the operator's tests run on: a
// real kube-apiserver and etcd (envtest, no controllers, no garbage
// collector) with the repository's CRDs installed. It is the one place that
// knows where the binaries and the CRDs are.
package envtestenv

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// KubernetesVersion is the version `make envtest` builds kube-apiserver and
// etcd for, in bin/k8s/<version>.
const KubernetesVersion = "1.37.2"

// Env is a running control plane.
type Env struct {
	env *envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
}

// Start starts kube-apiserver and etcd and installs the CRDs of
// config/crd/bases. repoRoot is the repository root relative to the calling
// test's package directory (for example "..", or "../.."). The binaries come
// from $KUBEBUILDER_ASSETS, else from what `make envtest` builds; when they
// are missing the error names the make target that provides them.
func Start(repoRoot string) (*Env, error) {
	assets, err := assetsDir(repoRoot)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		// envtest's default (20 s) is too short for kube-apiserver's first
		// start on a 2-core machine that is also compiling: five retries
		// all timed out at a load average of 18.
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest (kube-apiserver and etcd from %s): %w", assets, err)
	}
	return &Env{env: env, Config: cfg}, nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() error {
	if err := e.env.Stop(); err != nil {
		return fmt.Errorf("stop envtest: %w", err)
	}
	return nil
}

func assetsDir(repoRoot string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(repoRoot, "bin", "k8s", KubernetesVersion)
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("envtest binary %s not found in %s (KUBEBUILDER_ASSETS): run `make envtest` or `make test-operator`, which build it", b, dir)
		}
	}
	return filepath.Abs(dir)
}

// AddUser provisions a user of the API server (for tests that act as a
// non-admin identity) and returns its authenticated user.
func (e *Env) AddUser(user envtest.User) (*envtest.AuthenticatedUser, error) {
	return e.env.AddUser(user, nil)
}
