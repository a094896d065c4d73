// Package metrics holds what the gateway's Prometheus series share: their
// prefix (presence_gateway_) and the registry served on METRICS_PORT at
// /metrics. Each layer defines and registers the series it writes, and is
// their only writer:
//
//   - server.NewMetrics: connections, frames, upgrades, slow consumers and
//     online_users_local (users with an open socket on this replica);
//   - hub.NewMetrics: presence frames fanned out to local subscribers;
//   - presence.NewMetrics: what either store does (transitions, events
//     published, heartbeat batches, watched users);
//   - redisstore.NewMetrics: Redis commands and errors, reaped connections,
//     store_users_held (users kept here, offline graces included), reseeds.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every gateway series.
const Namespace = "presence_gateway"

// NewRegistry returns the registry the gateway serves, holding the Go
// runtime and process collectors; the layers register their series on it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	RegisterRuntime(reg)
	return reg
}

// RegisterRuntime registers the Go runtime and process collectors on reg.
func RegisterRuntime(reg prometheus.Registerer) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}
