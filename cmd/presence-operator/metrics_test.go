package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/presencekit/presence-operator/internal/envtestenv"
	"github.com/presencekit/presence-operator/internal/needs"
	"github.com/presencekit/presence-operator/internal/poll"
)

// TestMetricsNeedAnAuthorizedToken runs the operator against envtest with
// its default --metrics-secure and scrapes /metrics as a platform's
// Prometheus would: without a token the request is refused (401), a token
// of a ServiceAccount without the metrics-reader ClusterRole is forbidden
// (403), and one bound to config/rbac/metrics_reader_role.yaml gets the
// metrics.
func TestMetricsNeedAnAuthorizedToken(t *testing.T) {
	assets, err := envtestenv.Assets(filepath.Join("..", ".."))
	if errors.Is(err, envtestenv.ErrNotInstalled) {
		needs.Missing(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		// As in internal/envtestenv: the 20 s default is too short on a
		// busy 2-core machine.
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := t.Context()

	// The shipped metrics-reader ClusterRole, bound to one ServiceAccount.
	var reader rbacv1.ClusterRole
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "metrics_reader_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &reader); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &reader, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		t.Helper()
		if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest for %s: %v", sa, err)
		}
		return tr.Status.Token
	}
	prometheus, stranger := token("prometheus"), token("stranger")
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: reader.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: "default"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"--kubeconfig=" + kubeconfig, "--metrics-bind-address=" + addr,
			"--health-probe-bind-address=0", "--zap-log-level=error"}, io.Discard)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})

	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		// The operator serves a self-signed certificate by default.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a test against a self-signed certificate
	}}
	scrape := func(token string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}

	// Wait for the server with the authorized token, then check the others.
	poll.Eventually(t, 60*time.Second, "an authorized scrape of /metrics", func() (bool, string) {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the operator exited: %v", err)
		default:
		}
		status, body, err := scrape(prometheus)
		if err != nil {
			return false, err.Error()
		}
		return status == http.StatusOK && strings.Contains(body, "controller_runtime_reconcile_total"),
			fmt.Sprintf("HTTP %d: %.200s", status, body)
	})
	for _, c := range []struct {
		who, token string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a token not allowed to GET /metrics", stranger, http.StatusForbidden},
		// controller-runtime's filter answers a token the API server
		// cannot authenticate with 500 "Authentication failed".
		{"a forged token", "not-a-token", http.StatusInternalServerError},
	} {
		status, body, err := scrape(c.token)
		if err != nil {
			t.Fatalf("%s: %v", c.who, err)
		}
		if status != c.want || strings.Contains(body, "controller_runtime_reconcile_total") {
			t.Errorf("scrape with %s: HTTP %d (%.100s), want %d and no metrics", c.who, status, body, c.want)
		}
	}
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
