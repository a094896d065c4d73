package redisstore

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/metrics"
)

// Metrics are the series only the Redis store writes (the series every
// store writes are presence.Metrics).
type Metrics struct {
	RedisCommandDuration   *prometheus.HistogramVec // command
	RedisErrorsTotal       prometheus.Counter
	ReapedConnectionsTotal prometheus.Counter
	// UsersHeld: users the store holds on this replica (a connection here,
	// or an offline grace pending here).
	UsersHeld prometheus.Gauge
	// EventsCoalescedTotal: events from Redis replaced by a newer event of
	// the same user before the subscriber delivered them (latest state wins;
	// the newest is always delivered).
	EventsCoalescedTotal prometheus.Counter
	// RedisReseedsTotal: new Redis clients made after the seed nodes file
	// (REDIS_NODES_FILE) changed.
	RedisReseedsTotal prometheus.Counter
}

// NewMetrics creates the Redis store's series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ns := metrics.Namespace
	m := &Metrics{
		RedisCommandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "redis_command_duration_seconds",
			Help:    "Duration of Redis commands and pipelines, by command.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}, []string{"command"}),
		RedisErrorsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "redis_errors_total",
			Help: "Redis commands that failed."}),
		ReapedConnectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "reaped_connections_total",
			Help: "Connections of dead replicas cleaned up by this replica."}),
		UsersHeld: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "store_users_held",
			Help: "Users the Redis store holds on this replica: with a connection here, or an offline grace pending here."}),
		EventsCoalescedTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "redis_events_coalesced_total",
			Help: "Presence events received from Redis that a newer event of the same user replaced before delivery."}),
		RedisReseedsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "redis_reseeds_total",
			Help: "Redis clients replaced after the seed nodes file (REDIS_NODES_FILE) changed."}),
	}
	reg.MustRegister(m.RedisCommandDuration, m.RedisErrorsTotal, m.ReapedConnectionsTotal, m.UsersHeld,
		m.EventsCoalescedTotal, m.RedisReseedsTotal)
	return m
}
