// Command presence-operator runs the PresenceGateway and RedisCluster
// controllers (a controller-runtime manager) against the cluster of the
// current kubeconfig (--kubeconfig, $KUBECONFIG, in-cluster, ~/.kube/config).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	"github.com/presencekit/presence-operator/controllers"
	"github.com/presencekit/presence-operator/internal/version"
)

// defaultGatewayImage is the gateway image for PresenceGateways without
// spec.image, unless --gateway-image says otherwise (the Helm chart sets it).
const defaultGatewayImage = "ghcr.io/presencekit/presence-gateway:0.1.0"

func main() {
	if err := run(ctrl.SetupSignalHandler(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "presence-operator:", err)
		os.Exit(1)
	}
}

// options are the operator's command-line flags.
type options struct {
	kubeconfig      string
	metricsAddr     string
	metricsSecure   bool
	metricsCertDir  string
	probeAddr       string
	leaderElect     bool
	leaderElectNS   string
	gatewayImage    string
	checkInterval   time.Duration
	checkTimeout    time.Duration
	checkHeartbeat  time.Duration
	gatewayWorkers  int
	redisWorkers    int
	maxRollouts     int
	apiQPS          float64
	apiBurst        int
	watchNamespaces []string
	zap             zap.Options
	version         bool
}

// parseFlags parses and checks args.
func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("presence-operator", flag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file; empty = $KUBECONFIG, in-cluster, ~/.kube/config")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "address of the Prometheus /metrics endpoint; 0 disables it")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to authenticated clients allowed to GET /metrics (TokenReview and SubjectAccessReview); false serves plain HTTP to anyone who reaches the port")
	fs.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "directory with tls.crt and tls.key for /metrics; empty = a self-signed certificate generated at start")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader (a Lease in the operator's namespace) so that only one replica reconciles")
	fs.StringVar(&o.leaderElectNS, "leader-election-namespace", "", "namespace of the leader-election Lease; empty = the pod's own namespace (required with --leader-elect outside a cluster)")
	fs.StringVar(&o.gatewayImage, "gateway-image", defaultGatewayImage, "gateway image of PresenceGateways without spec.image")
	fs.DurationVar(&o.checkInterval, "redis-check-interval", controllers.DefaultRedisCheckInterval, "time between two health checks of a RedisCluster")
	fs.DurationVar(&o.checkTimeout, "redis-check-timeout", controllers.DefaultRedisCheckTimeout, "timeout of one health check of a RedisCluster (its seeds are asked concurrently)")
	fs.DurationVar(&o.checkHeartbeat, "redis-check-heartbeat", controllers.DefaultRedisCheckHeartbeat, "how old a RedisCluster's status.lastCheckTime may grow before a check that found nothing new writes it again")
	fs.IntVar(&o.gatewayWorkers, "max-concurrent-reconciles-presencegateway", controllers.DefaultPresenceGatewayWorkers, "PresenceGateways reconciled at once")
	fs.IntVar(&o.redisWorkers, "max-concurrent-reconciles-rediscluster", controllers.DefaultRedisClusterWorkers, "RedisClusters reconciled (and health-checked) at once; a Redis that does not answer holds one worker for up to --redis-check-timeout")
	fs.IntVar(&o.maxRollouts, "max-concurrent-rollouts", 1, "gateway fleets that may roll out at once a new pod template they did not ask for in their own spec (the default image changed, a new operator version): the others wait in line (Progressing=False, RolloutQueued); 0 = no limit. An edit of a PresenceGateway's own spec rolls it at once")
	fs.Float64Var(&o.apiQPS, "kube-api-qps", controllers.DefaultKubeAPIQPS, "requests per second the operator sends to the API server, sustained (client-go's rate limit; reads from the informer cache do not count)")
	fs.IntVar(&o.apiBurst, "kube-api-burst", controllers.DefaultKubeAPIBurst, "requests the operator may send to the API server in a burst above --kube-api-qps")
	watch := fs.String("watch-namespaces", "", "comma-separated namespaces whose PresenceGateways and RedisClusters the operator reconciles; empty = all namespaces")
	fs.BoolVar(&o.version, "version", false, "print the version, commit and Go version, and exit")
	o.zap.BindFlags(fs) // --zap-log-level, --zap-devel, ...
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.version {
		return o, nil // nothing else is read: run prints the version and returns
	}
	if o.checkInterval < time.Second {
		return nil, fmt.Errorf("--redis-check-interval=%s: must be at least 1s", o.checkInterval)
	}
	if o.checkTimeout <= 0 || o.checkTimeout > o.checkInterval {
		return nil, fmt.Errorf("--redis-check-timeout=%s: must be positive and at most --redis-check-interval (%s)", o.checkTimeout, o.checkInterval)
	}
	if o.checkHeartbeat < o.checkInterval {
		return nil, fmt.Errorf("--redis-check-heartbeat=%s: must be at least --redis-check-interval (%s)", o.checkHeartbeat, o.checkInterval)
	}
	if o.gatewayWorkers < 1 {
		return nil, fmt.Errorf("--max-concurrent-reconciles-presencegateway=%d: must be at least 1", o.gatewayWorkers)
	}
	if o.redisWorkers < 1 {
		return nil, fmt.Errorf("--max-concurrent-reconciles-rediscluster=%d: must be at least 1", o.redisWorkers)
	}
	if o.maxRollouts < 0 {
		return nil, fmt.Errorf("--max-concurrent-rollouts=%d: must be at least 0 (0 = no limit)", o.maxRollouts)
	}
	if o.apiQPS <= 0 {
		return nil, fmt.Errorf("--kube-api-qps=%g: must be positive", o.apiQPS)
	}
	if float64(o.apiBurst) < o.apiQPS {
		return nil, fmt.Errorf("--kube-api-burst=%d: must be at least --kube-api-qps (%g)", o.apiBurst, o.apiQPS)
	}
	namespaces, err := parseNamespaces(*watch)
	if err != nil {
		return nil, err
	}
	o.watchNamespaces = namespaces
	return o, nil
}

// parseNamespaces parses --watch-namespaces: namespace names, comma-separated.
func parseNamespaces(list string) ([]string, error) {
	var namespaces []string
	for ns := range strings.SplitSeq(list, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--watch-namespaces entry %q: %s", ns, strings.Join(errs, "; "))
		}
		if !slices.Contains(namespaces, ns) {
			namespaces = append(namespaces, ns)
		}
	}
	return namespaces, nil
}

// run parses args and runs the manager until ctx is done; with --version
// it writes the version to stdout and returns.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.version {
		_, err := fmt.Fprintln(stdout, version.String("presence-operator"))
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("setup")
	// go-redis logs every failed dial of a health check; the RedisCluster
	// status already says it, so these go to the debug level.
	redis.SetLogger(controllers.RedisLogger{Log: ctrl.Log.WithName("go-redis")})

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(presencev1alpha1.AddToScheme(scheme))
	utilruntime.Must(gatewayv1.Install(scheme))        // HTTPRoutes, when the cluster serves them
	utilruntime.Must(monitoringv1.AddToScheme(scheme)) // PodMonitors, when the cluster serves them

	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.apiQPS), o.apiBurst
	metrics := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.metricsSecure, CertDir: o.metricsCertDir}
	if o.metricsSecure {
		// Only clients whose token the API server accepts (TokenReview) and
		// that may GET the non-resource URL /metrics (SubjectAccessReview),
		// e.g. through the metrics-reader ClusterRole.
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(o.watchNamespaces),
		Client:                        controllers.ClientOptions(),
		Metrics:                       metrics,
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "presence-operator.presencekit.io",
		LeaderElectionNamespace:       o.leaderElectNS,
		LeaderElectionReleaseOnCancel: true, // the process exits right after the manager stops
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := (&controllers.PresenceGatewayReconciler{
		Client:                  mgr.GetClient(),
		Scheme:                  mgr.GetScheme(),
		Recorder:                mgr.GetEventRecorder("presencegateway-controller"),
		DefaultImage:            o.gatewayImage,
		MaxConcurrentReconciles: o.gatewayWorkers,
		MaxConcurrentRollouts:   o.maxRollouts,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the PresenceGateway controller: %w", err)
	}
	if err := (&controllers.RedisClusterReconciler{
		Client:                  mgr.GetClient(),
		Recorder:                mgr.GetEventRecorder("rediscluster-controller"),
		CheckInterval:           o.checkInterval,
		CheckTimeout:            o.checkTimeout,
		CheckHeartbeat:          o.checkHeartbeat,
		MaxConcurrentReconciles: o.redisWorkers,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the RedisCluster controller: %w", err)
	}
	if err := registerConditionMetrics(&controllers.ConditionCollector{Reader: mgr.GetCache()}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add healthz check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add readyz check: %w", err)
	}
	log.Info("starting manager", "gatewayImage", o.gatewayImage, "leaderElect", o.leaderElect,
		"watchNamespaces", o.watchNamespaces, "metricsSecure", o.metricsSecure)
	return mgr.Start(ctx)
}

// registerConditionMetrics serves c on the manager's /metrics (controller-
// runtime's registry), replacing one an earlier run in this process left.
func registerConditionMetrics(c prometheus.Collector) error {
	err := ctrlmetrics.Registry.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		ctrlmetrics.Registry.Unregister(already.ExistingCollector)
		err = ctrlmetrics.Registry.Register(c)
	}
	if err != nil {
		return fmt.Errorf("register the condition metrics: %w", err)
	}
	return nil
}

// restConfig loads --kubeconfig, or else what ctrl.GetConfig finds.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}
