package presence

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/metrics"
)

// Metrics are the series a Store writes, whichever implementation runs
// (a process runs one store, so each series has one writer).
type Metrics struct {
	EventsPublishedTotal   prometheus.Counter
	HeartbeatBatchDuration prometheus.Histogram
	TransitionsTotal       *prometheus.CounterVec // to: online, offline, status
	WatchedUsers           prometheus.Gauge
}

// NewMetrics creates the store series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ns := metrics.Namespace
	m := &Metrics{
		EventsPublishedTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "presence_events_published_total",
			Help: "Presence change events published by this replica."}),
		HeartbeatBatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "heartbeat_batch_duration_seconds",
			Help:    "Time to refresh all local connections in one heartbeat.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		TransitionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "presence_transitions_total",
			Help: "Presence transitions made by this replica, by target (online, offline, status)."}, []string{"to"}),
		WatchedUsers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "watched_users",
			Help: "Distinct users this replica subscribes to."}),
	}
	reg.MustRegister(m.EventsPublishedTotal, m.HeartbeatBatchDuration, m.TransitionsTotal, m.WatchedUsers)
	return m
}
