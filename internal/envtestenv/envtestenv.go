// Package envtestenv starts the control plane the operator's tests run on: a
// real kube-apiserver and etcd (envtest, no controllers, no garbage
// collector) with the repository's CRDs installed. It is the one place that
// knows where the binaries and the CRDs are, and the one TestMain (Main) of
// the packages that share a control plane.
package envtestenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/presencekit/presence-operator/internal/needs"
)

// KubernetesVersion is the version `make envtest` builds kube-apiserver and
// etcd for, in bin/k8s/<version>.
const KubernetesVersion = "1.37.2"

// ErrNotInstalled is returned (wrapped, with the directory and the make
// target) when kube-apiserver or etcd is not where Assets looks: the tests
// skip, or fail in CI (package internal/needs).
var ErrNotInstalled = errors.New("needs kube-apiserver and etcd (envtest)")

// notInstalled is why Main started no control plane, when the binaries are
// not installed.
var notInstalled error

// Main is the TestMain of a package whose tests share one control plane: it
// starts it, calls setup (the package's clients, a manager; stop, if not nil,
// runs after the tests), runs the tests and stops it. It returns the exit
// code. When the binaries are not installed it runs the tests without a
// control plane: those that need one call Require and skip (fail in CI); the
// others run.
func Main(m *testing.M, repoRoot string, setup func(*Env) (stop func(), err error)) int {
	env, err := Start(repoRoot)
	if errors.Is(err, ErrNotInstalled) {
		notInstalled = err
		return m.Run()
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
	stop, err := setup(env)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if stop != nil {
		defer stop()
	}
	return m.Run()
}

// Require skips tb (fails it in CI, see package internal/needs) when Main
// started no control plane because its binaries are not installed.
func Require(tb testing.TB) {
	tb.Helper()
	if notInstalled != nil {
		needs.Missing(tb, notInstalled.Error())
	}
}

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
	assets, err := Assets(repoRoot)
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

// Assets returns the absolute directory of kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS, else the bin/k8s/<KubernetesVersion> that
// `make envtest` builds. When a binary is missing the error wraps
// ErrNotInstalled and names the make target, in one line.
func Assets(repoRoot string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(repoRoot, "bin", "k8s", KubernetesVersion)
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%w: %s not found in %s (KUBEBUILDER_ASSETS): run `make test-operator` or `make test-helm`, which build it", ErrNotInstalled, b, dir)
		}
	}
	return filepath.Abs(dir)
}

// AddUser provisions a user of the API server (for tests that act as a
// non-admin identity) and returns its authenticated user.
func (e *Env) AddUser(user envtest.User) (*envtest.AuthenticatedUser, error) {
	return e.env.AddUser(user, nil)
}
