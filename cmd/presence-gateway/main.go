// Command presence-gateway is the WebSocket presence server. It only wires
// the gateway's packages together; see gateway/ and the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presencekit/presence-operator/gateway/auth"
	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/gateway/hub"
	"github.com/presencekit/presence-operator/gateway/metrics"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/memstore"
	"github.com/presencekit/presence-operator/gateway/presence/redisstore"
	"github.com/presencekit/presence-operator/gateway/server"
	"github.com/presencekit/presence-operator/internal/version"
)

func main() {
	cfg, err := config.Load(os.Args[1:], os.Getenv, os.Stdout)
	if errors.Is(err, config.ErrHelp) {
		return
	}
	if errors.Is(err, config.ErrVersion) {
		fmt.Println(version.String("presence-gateway"))
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "presence-gateway: %v\n", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "presence-gateway: %v\n", err)
		os.Exit(1)
	}
}

// newStore returns the presence store the configuration asks for: the
// embedded in-memory store when REDIS_NODES is empty, else the Redis
// Cluster store shared by every replica.
func newStore(cfg config.Config, opts presence.Options, reg prometheus.Registerer) (presence.Store, error) {
	if len(cfg.RedisNodes) == 0 {
		return memstore.New(opts)
	}
	host, _ := os.Hostname() // the pod name: names this replica's lease
	c := redisstore.Config{
		Nodes: cfg.RedisNodes, NodesFile: cfg.RedisNodesFile,
		Username: cfg.RedisUsername, UsernameFile: cfg.RedisUsernameFile,
		Password: cfg.RedisPassword, PasswordFile: cfg.RedisPasswordFile,
		TLS: cfg.RedisTLS, TLSCAFile: cfg.RedisTLSCAFile,
		TLSServerName: cfg.RedisTLSServerName, TLSInsecureSkipVerify: cfg.RedisTLSInsecureSkipVerify,
		ReplicaName: host,
		Metrics:     redisstore.NewMetrics(reg),
	}
	if c.NodesFile != "" {
		c.Nodes = nil // the file is read by the store, and re-read
	}
	return redisstore.New(c, opts)
}

// newVerifier returns the JWT verifier of the configured key source, or
// nil when auth is off. A JWKS is refreshed until ctx ends.
func newVerifier(ctx context.Context, cfg config.Config) (*auth.Verifier, error) {
	o := auth.Options{
		Audience:     cfg.AuthJWTAudience,
		Issuer:       cfg.AuthJWTIssuer,
		AllowNoExp:   !cfg.AuthJWTRequireExp,
		Leeway:       cfg.AuthJWTLeeway,
		RequireWatch: cfg.AuthRequireWatchClaim,
	}
	if o.Leeway == 0 {
		o.Leeway = auth.NoLeeway // AUTH_JWT_LEEWAY=0s means none, not the default
	}
	switch {
	case cfg.AuthJWTSecret != "":
		return auth.NewHS256(cfg.AuthJWTSecret, o)
	case cfg.AuthJWTSecretFile != "":
		return auth.NewFromSecretFile(cfg.AuthJWTSecretFile, o)
	case cfg.AuthJWTPublicKeyFile != "":
		return auth.NewFromPublicKeyFile(cfg.AuthJWTPublicKeyFile, o)
	case cfg.AuthJWTJWKSURL != "":
		return auth.NewFromJWKS(ctx, cfg.AuthJWTJWKSURL, o, auth.JWKSOptions{})
	}
	return nil, nil
}

// newMetricsMux is the private metrics port: /metrics, and the profiles
// (heap, goroutine, CPU) under /debug/pprof/ only with PPROF_ENABLED.
func newMetricsMux(reg *prometheus.Registry, pprofEnabled bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if pprofEnabled {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	return mux
}

func newLogger(cfg config.Config) *slog.Logger {
	ho := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, ho))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, ho))
}

func run(cfg config.Config) error {
	log := newLogger(cfg)
	slog.SetDefault(log)
	reg := metrics.NewRegistry()

	// The JWKS refresh lives as long as run.
	authCtx, stopAuth := context.WithCancel(context.Background())
	defer stopAuth()
	verifier, err := newVerifier(authCtx, cfg)
	if err != nil {
		return err
	}
	// The hub is made after the store it watches through; no user is
	// watched (so no event arrives) before it exists.
	var h *hub.Hub
	store, err := newStore(cfg, presence.Options{
		TTL:          cfg.PresenceTTL,
		Heartbeat:    cfg.HeartbeatInterval,
		OfflineGrace: cfg.OfflineGrace,
		OnEvent:      func(u presence.User) { h.Publish(u) },
		Logger:       log,
		Metrics:      presence.NewMetrics(reg),
	}, reg)
	if err != nil {
		return err
	}
	h = hub.New(store, hub.NewMetrics(reg))
	srv, err := server.New(server.Options{Config: cfg, Store: store, Hub: h, Metrics: server.NewMetrics(reg), Verifier: verifier, Logger: log})
	if err != nil {
		return err
	}

	wsLn, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.WSPort))
	if err != nil {
		return fmt.Errorf("WS_PORT %d: %w", cfg.WSPort, err)
	}
	metricsLn, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.MetricsPort))
	if err != nil {
		_ = wsLn.Close()
		return fmt.Errorf("METRICS_PORT %d: %w", cfg.MetricsPort, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The whole shutdown, drain and store close, fits in SHUTDOWN_GRACE.
	var exitBy atomic.Int64
	context.AfterFunc(ctx, func() { exitBy.Store(time.Now().Add(cfg.ShutdownGrace * 98 / 100).UnixNano()) })
	storeCtx, stopStore := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := store.Run(storeCtx); err != nil {
			log.Error("presence store stopped", "err", err)
		}
	})
	metricsSrv := &http.Server{Handler: newMetricsMux(reg, cfg.PprofEnabled), ReadHeaderTimeout: 10 * time.Second}
	wg.Go(func() {
		if err := metricsSrv.Serve(metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	})

	log.Info("presence gateway listening", "ws", wsLn.Addr().String(), "metrics", metricsLn.Addr().String(),
		"store", storeKind(cfg), "auth", cfg.Auth(), "pprof", cfg.PprofEnabled)
	serveErr := srv.Serve(ctx, wsLn)

	// Drained (or failed): stop the background work and remove what is
	// left of this replica's presence.
	stopStore()
	closeBy := time.Now().Add(2 * time.Second)
	if t := exitBy.Load(); t != 0 {
		closeBy = time.Unix(0, max(t, time.Now().Add(100*time.Millisecond).UnixNano()))
	}
	closeCtx, cancel := context.WithDeadline(context.Background(), closeBy)
	defer cancel()
	if err := store.Close(closeCtx); err != nil {
		log.Warn("closing the presence store", "err", err)
	}
	_ = metricsSrv.Shutdown(closeCtx)
	wg.Wait()
	log.Info("presence gateway stopped")
	return serveErr
}

func storeKind(cfg config.Config) string {
	if len(cfg.RedisNodes) == 0 {
		return "memory"
	}
	return "redis-cluster"
}
