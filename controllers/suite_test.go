package controllers

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	"github.com/presencekit/presence-operator/internal/envtestenv"
	"github.com/presencekit/presence-operator/internal/gomod"
	"github.com/presencekit/presence-operator/internal/needs"
)

// The package's tests share one envtest control plane (a real kube-apiserver
// and etcd, no controllers, no garbage collector) and one manager running
// both reconcilers, started by TestMain.
var (
	k8sClient client.Client
	// testConfig reaches the envtest API server as its admin.
	testConfig *rest.Config
	// testCache is the running manager's cache, what the reconcilers read.
	testCache  cache.Cache
	testScheme = runtime.NewScheme()
	// redisNodes are the real six-node cluster's addresses (make redis-up).
	testRedisNodes []string
)

const (
	testGatewayImage = "example.test/presence-gateway:test"
	// testCheckInterval keeps RedisCluster checks frequent in tests.
	testCheckInterval = 2 * time.Second
	// testCheckTimeout is longer than every wait of the tests, so that a
	// check stuck on a node that never answers holds its worker for the
	// whole test; nodes that refuse connections fail at once.
	testCheckTimeout = 2 * waitTimeout
	// waitTimeout bounds every Eventually in this package.
	waitTimeout = 30 * time.Second
	pollEvery   = 100 * time.Millisecond
)

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(presencev1alpha1.AddToScheme(testScheme))
	utilruntime.Must(gatewayv1.Install(testScheme))
	utilruntime.Must(monitoringv1.AddToScheme(testScheme))
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapLevel())))
	// As in the operator: go-redis's dial errors (the tests point clusters
	// at closed ports) go to the debug level, not to stderr.
	redis.SetLogger(RedisLogger{Log: logf.Log.WithName("go-redis")})

	testRedisNodes = strings.Split(envOr("PRESENCE_TEST_REDIS_NODES",
		"127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004,127.0.0.1:7005"), ",")
	os.Exit(envtestenv.Main(m, "..", setupSuite))
}

// setupSuite makes the test client and starts the suite's operator: a
// manager running both reconcilers, as the operator does.
func setupSuite(env *envtestenv.Env) (stop func(), err error) {
	testConfig = env.Config
	k8sClient, err = client.New(env.Config, client.Options{Scheme: testScheme})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := installGatewayAPI(env.Config); err != nil {
		return nil, err
	}
	if err := installPodMonitorCRD(env.Config); err != nil {
		return nil, err
	}
	if err := installScaledObjectCRD(env.Config); err != nil {
		return nil, err
	}
	// The manager runs as a user bound to config/rbac/role.yaml only, the
	// ClusterRole generated from the +kubebuilder:rbac markers: a verb the
	// reconcilers need but the markers lack fails the tests.
	operatorConfig, err = operatorUserConfig(env)
	if err != nil {
		return nil, err
	}
	if err := startOperator(suiteOperator); err != nil {
		return nil, err
	}
	return func() {
		if err := stopOperator(); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}, nil
}

// installGatewayAPI installs the Gateway API's standard CRDs from the
// sigs.k8s.io/gateway-api module at the version go.mod pins (the operator
// uses its types), so that spec.httpRoute is tested against the real
// schema. The operator looks for HTTPRoute when it starts, so this comes
// first.
func installGatewayAPI(cfg *rest.Config) error {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		return fmt.Errorf("find the sigs.k8s.io/gateway-api module: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{dir}, ErrorIfPathMissing: true}); err != nil {
		return fmt.Errorf("install the Gateway API CRDs from %s: %w", dir, err)
	}
	return nil
}

// prometheus-operator's release whose PodMonitor CRD the tests install: the
// same version as its API module in go.mod, whose types the operator uses.
const (
	prometheusOperatorModule  = "github.com/prometheus-operator/prometheus-operator"
	prometheusOperatorVersion = "v0.85.0"
)

// installPodMonitorCRD installs prometheus-operator's PodMonitor CRD from
// its Go module (see package gomod), before the operator looks for it.
func installPodMonitorCRD(cfg *rest.Config) error {
	p, err := gomod.File(context.Background(), prometheusOperatorModule, prometheusOperatorVersion,
		"example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml")
	if err != nil {
		return err
	}
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{p}, ErrorIfPathMissing: true}); err != nil {
		return fmt.Errorf("install the PodMonitor CRD from %s: %w", p, err)
	}
	return nil
}

// KEDA's release whose ScaledObject CRD the tests install.
const (
	kedaModule  = "github.com/kedacore/keda/v2"
	kedaVersion = "v2.21.0"
)

// installScaledObjectCRD installs KEDA's ScaledObject CRD from its Go
// module (see package gomod), before the operator looks for it.
func installScaledObjectCRD(cfg *rest.Config) error {
	p, err := gomod.File(context.Background(), kedaModule, kedaVersion, "config/crd/bases/keda.sh_scaledobjects.yaml")
	if err != nil {
		return err
	}
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{p}, ErrorIfPathMissing: true}); err != nil {
		return fmt.Errorf("install the ScaledObject CRD from %s: %w", p, err)
	}
	return nil
}

// operatorSettings are the operator flags the tests vary.
type operatorSettings struct {
	defaultImage    string   // --gateway-image
	maxRollouts     int      // --max-concurrent-rollouts
	watchNamespaces []string // --watch-namespaces
}

// suiteOperator is the operator most tests run against: every namespace,
// and no rollout limit, so that a test's leftover rollouts (envtest runs no
// Deployment controller to finish them) never hold up another test. The
// rollout tests run operators of their own (restartOperator).
var suiteOperator = operatorSettings{defaultImage: testGatewayImage}

// The running operator: its manager's stop function and settings.
var (
	operatorConfig  *rest.Config
	operatorStop    func() error
	operatorRunning operatorSettings
)

// startOperator starts a manager running both reconcilers with s, as the
// operator's main does, and waits for its cache.
func startOperator(s operatorSettings) error {
	mgr, err := ctrl.NewManager(operatorConfig, ctrl.Options{
		Scheme:                 testScheme,
		Cache:                  CacheOptions(s.watchNamespaces),
		Client:                 ClientOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The controllers' names are registered once per process; a
		// restarted operator registers them again.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	if err := (&PresenceGatewayReconciler{
		Client: &countingWriter{Client: mgr.GetClient(), n: &gatewayWrites, reads: &gatewayReconciles}, Scheme: mgr.GetScheme(),
		Recorder: mgr.GetEventRecorder("presencegateway-controller"), DefaultImage: s.defaultImage,
		MaxConcurrentRollouts: s.maxRollouts, UnwatchedRecheck: time.Second,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&RedisClusterReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("rediscluster-controller"),
		CheckInterval: testCheckInterval, CheckTimeout: testCheckTimeout, APIReader: mgr.GetAPIReader(),
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	syncCtx, syncCancel := context.WithTimeout(ctx, waitTimeout)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		cancel()
		return fmt.Errorf("the operator's cache did not sync: %w", <-done)
	}
	testCache = mgr.GetCache()
	operatorStop = func() error {
		cancel()
		return <-done
	}
	operatorRunning = s
	return nil
}

func stopOperator() error {
	if operatorStop == nil {
		return nil
	}
	err := operatorStop()
	operatorStop = nil
	return err
}

// restartOperator stops the running operator and starts one with s, as a
// new operator version or flag value does in a cluster. The test's cleanup
// brings the suite's operator back.
func restartOperator(t *testing.T, s operatorSettings) {
	t.Helper()
	if reflect.DeepEqual(operatorRunning, suiteOperator) {
		t.Cleanup(func() {
			if err := stopOperator(); err != nil {
				t.Errorf("stop the test's operator: %v", err)
			}
			if err := startOperator(suiteOperator); err != nil {
				t.Fatalf("start the suite's operator again: %v", err)
			}
		})
	}
	if err := stopOperator(); err != nil {
		t.Fatalf("stop the operator: %v", err)
	}
	if err := startOperator(s); err != nil {
		t.Fatal(err)
	}
}

// operatorUserConfig creates the user presence-operator, bound to the
// ClusterRole of config/rbac/role.yaml, and returns its rest.Config.
func operatorUserConfig(env *envtestenv.Env) (*rest.Config, error) {
	b, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(b, role); err != nil {
		return nil, fmt.Errorf("config/rbac/role.yaml: %w", err)
	}
	ctx := context.Background()
	if err := k8sClient.Create(ctx, role); err != nil {
		return nil, fmt.Errorf("create ClusterRole %s: %w", role.Name, err)
	}
	const user = "presence-operator"
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := k8sClient.Create(ctx, binding); err != nil {
		return nil, fmt.Errorf("create ClusterRoleBinding %s: %w", binding.Name, err)
	}
	u, err := env.AddUser(envtest.User{Name: user})
	if err != nil {
		return nil, fmt.Errorf("envtest user %s: %w", user, err)
	}
	return u.Config(), nil
}

func zapLevel() zapcore.Level {
	if os.Getenv("TEST_OPERATOR_DEBUG") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel // keep the test output readable
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// gatewayWrites counts, per namespace, the requests the PresenceGateway
// reconciler sent that may write (create, update, patch, apply, delete,
// status writes).
var gatewayWrites writeCounter

// gatewayReconciles counts, per namespace, the reconciles of the
// PresenceGateways in it: each reconcile starts by reading its gateway
// through the reconciler's client, and nothing else in the reconciler reads
// a PresenceGateway. controller-runtime's reconcile_total counts every
// namespace at once, and the gateways earlier tests left behind (envtest runs
// no namespace controller) are reconciled too when their RedisCluster's
// status or the rollout queue moves.
var gatewayReconciles writeCounter

type writeCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (w *writeCounter) add(namespace string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == nil {
		w.n = map[string]int{}
	}
	w.n[namespace]++
}

// in returns the writes to objects of namespace so far.
func (w *writeCounter) in(namespace string) func() int {
	return func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.n[namespace]
	}
}

// countingWriter counts the writes sent through a client, and, when reads is
// set, the reads of PresenceGateways.
type countingWriter struct {
	client.Client
	n     *writeCounter
	reads *writeCounter
}

func (c *countingWriter) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*presencev1alpha1.PresenceGateway); ok && c.reads != nil {
		c.reads.add(key.Namespace)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *countingWriter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.n.add(obj.GetNamespace())
	return c.Client.Create(ctx, obj, opts...)
}

func (c *countingWriter) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.n.add(obj.GetNamespace())
	return c.Client.Update(ctx, obj, opts...)
}

func (c *countingWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.n.add(obj.GetNamespace())
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *countingWriter) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	ns := ""
	if o, ok := obj.(interface{ GetNamespace() string }); ok {
		ns = o.GetNamespace()
	}
	c.n.add(ns)
	return c.Client.Apply(ctx, obj, opts...)
}

func (c *countingWriter) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.n.add(obj.GetNamespace())
	return c.Client.Delete(ctx, obj, opts...)
}

func (c *countingWriter) Status() client.SubResourceWriter {
	return &countingStatusWriter{SubResourceWriter: c.Client.Status(), n: c.n}
}

type countingStatusWriter struct {
	client.SubResourceWriter
	n *writeCounter
}

func (c *countingStatusWriter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	c.n.add(obj.GetNamespace())
	return c.SubResourceWriter.Update(ctx, obj, opts...)
}

func (c *countingStatusWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	c.n.add(obj.GetNamespace())
	return c.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// requireAPIServer skips the test (fails it in CI) when there is no API
// server: its binaries are not installed. newNamespace calls it, so every
// test on the API server does.
func requireAPIServer(t *testing.T) {
	t.Helper()
	envtestenv.Require(t)
}

// requireRedisCluster skips the test (fails it in CI) when the six-node
// cluster is not up.
func requireRedisCluster(t *testing.T) {
	t.Helper()
	requireAPIServer(t) // the tests that need Redis run the operator too
	for _, addr := range testRedisNodes {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			needs.Missing(t, fmt.Sprintf("needs a Redis Cluster, node %s unreachable (%v): run `make test-operator` (it starts one with `make redis-up`), or set PRESENCE_TEST_REDIS_NODES", addr, err))
		}
		_ = c.Close()
	}
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	requireAPIServer(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}
