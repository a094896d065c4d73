// Command presence-operator runs the PresenceGateway and RedisCluster
// controllers (a controller-runtime manager) against the cluster of the
// current kubeconfig (--kubeconfig, $KUBECONFIG, in-cluster, ~/.kube/config).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	"github.com/presencekit/presence-operator/controllers"
)

// redisLogger sends go-redis's internal log lines to the operator's logger
// at debug level (V(1)).
type redisLogger struct{ log logr.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.V(1).Info(fmt.Sprintf(format, v...))
}

// defaultGatewayImage is the gateway image for PresenceGateways without
// spec.image, unless --gateway-image says otherwise (the Helm chart sets it).
const defaultGatewayImage = "ghcr.io/presencekit/presence-gateway:0.1.0"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "presence-operator:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("presence-operator", flag.ContinueOnError)
	var (
		metricsAddr   = fs.String("metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint; 0 disables it")
		probeAddr     = fs.String("health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
		leaderElect   = fs.Bool("leader-elect", false, "elect a leader (a Lease in the operator's namespace) so that only one replica reconciles")
		leaderElectNS = fs.String("leader-election-namespace", "", "namespace of the leader-election Lease; empty = the pod's own namespace (required with --leader-elect outside a cluster)")
		gatewayImage  = fs.String("gateway-image", defaultGatewayImage, "gateway image of PresenceGateways without spec.image")
		checkInterval = fs.Duration("redis-check-interval", controllers.DefaultRedisCheckInterval, "time between two health checks of a RedisCluster")
		checkTimeout  = fs.Duration("redis-check-timeout", controllers.DefaultRedisCheckTimeout, "timeout of one node's health check")
	)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs) // --zap-log-level, --zap-devel, ...
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *checkInterval < time.Second {
		return fmt.Errorf("--redis-check-interval=%s: must be at least 1s", *checkInterval)
	}
	if *checkTimeout <= 0 || *checkTimeout > *checkInterval {
		return fmt.Errorf("--redis-check-timeout=%s: must be positive and at most --redis-check-interval (%s)", *checkTimeout, *checkInterval)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	// go-redis logs every failed dial of a health check; the RedisCluster
	// status already says it, so these go to the debug level.
	redis.SetLogger(redisLogger{ctrl.Log.WithName("go-redis")})

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(presencev1alpha1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress:        *probeAddr,
		LeaderElection:                *leaderElect,
		LeaderElectionID:              "presence-operator.presencekit.io",
		LeaderElectionNamespace:       *leaderElectNS,
		LeaderElectionReleaseOnCancel: true, // the process exits right after the manager stops
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := (&controllers.PresenceGatewayReconciler{
		Client:       mgr.GetClient(),
		Scheme:       mgr.GetScheme(),
		Recorder:     mgr.GetEventRecorder("presencegateway-controller"),
		DefaultImage: *gatewayImage,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the PresenceGateway controller: %w", err)
	}
	if err := (&controllers.RedisClusterReconciler{
		Client:        mgr.GetClient(),
		Recorder:      mgr.GetEventRecorder("rediscluster-controller"),
		CheckInterval: *checkInterval,
		CheckTimeout:  *checkTimeout,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the RedisCluster controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add healthz check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add readyz check: %w", err)
	}
	log.Info("starting manager", "gatewayImage", *gatewayImage, "leaderElect", *leaderElect)
	return mgr.Start(ctx)
}
