// Package metrics holds the gateway's Prometheus collectors (prefix
// presence_gateway_), served on METRICS_PORT at /metrics.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "presence_gateway"

// Metrics are the gateway's collectors. A nil *Metrics is not valid; tests
// use New(prometheus.NewRegistry()).
type Metrics struct {
	Connections             prometheus.Gauge
	MaxConnections          prometheus.Gauge
	ConnectionsTotal        prometheus.Counter
	DisconnectionsTotal     *prometheus.CounterVec // reason
	MessagesReceivedTotal   *prometheus.CounterVec // type
	MessagesSentTotal       *prometheus.CounterVec // type
	UpgradeRejectionsTotal  *prometheus.CounterVec // reason
	EventsPublishedTotal    prometheus.Counter
	EventsDeliveredTotal    prometheus.Counter
	RedisCommandDuration    *prometheus.HistogramVec // command
	RedisErrorsTotal        prometheus.Counter
	HeartbeatBatchDuration  prometheus.Histogram
	OnlineUsersLocal        prometheus.Gauge
	TransitionsTotal        *prometheus.CounterVec // to: online, offline, status
	ReapedConnectionsTotal  prometheus.Counter
	WatchedUsers            prometheus.Gauge
	SlowConsumerDisconnects prometheus.Counter
	EventsCoalescedTotal    prometheus.Counter
	// Store holds the series the Redis store owns (see StoreMetrics).
	Store *StoreMetrics
}

// New creates the collectors and registers them, with the Go runtime and
// process collectors, on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "connections",
			Help: "Open WebSocket connections on this replica."}),
		MaxConnections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "max_connections",
			Help: "MAX_CONNECTIONS of this replica: the open connections at which it refuses upgrades and reports not ready (0: no limit)."}),
		ConnectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "connections_total",
			Help: "WebSocket connections accepted."}),
		DisconnectionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "disconnections_total",
			Help: "WebSocket connections closed, by reason."}, []string{"reason"}),
		MessagesReceivedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "messages_received_total",
			Help: "Client frames received, by message type."}, []string{"type"}),
		MessagesSentTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "messages_sent_total",
			Help: "Frames sent to clients, by message type."}, []string{"type"}),
		UpgradeRejectionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "upgrade_rejections_total",
			Help: "WebSocket upgrades refused, by reason."}, []string{"reason"}),
		EventsPublishedTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "presence_events_published_total",
			Help: "Presence change events published by this replica."}),
		EventsDeliveredTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "presence_events_delivered_total",
			Help: "Presence frames queued to subscribed clients on this replica."}),
		RedisCommandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "redis_command_duration_seconds",
			Help:    "Duration of Redis commands and pipelines, by command.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}, []string{"command"}),
		RedisErrorsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "redis_errors_total",
			Help: "Redis commands that failed."}),
		HeartbeatBatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "heartbeat_batch_duration_seconds",
			Help:    "Time to refresh all local connections in one heartbeat.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		OnlineUsersLocal: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "online_users_local",
			Help: "Distinct users with at least one open WebSocket connection on this replica (written by the transport only; users kept online by an offline grace are not counted)."}),
		TransitionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "presence_transitions_total",
			Help: "Presence transitions made by this replica, by target (online, offline, status)."}, []string{"to"}),
		ReapedConnectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "reaped_connections_total",
			Help: "Connections of dead replicas cleaned up by this replica."}),
		WatchedUsers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "watched_users",
			Help: "Distinct users this replica subscribes to."}),
		SlowConsumerDisconnects: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "slow_consumer_disconnects_total",
			Help: "Connections closed because the client did not read its frames."}),
		EventsCoalescedTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "events_coalesced_total",
			Help: "Presence events that replaced a pending event about the same user in a client's send queue (latest state wins)."}),
	}
	reg.MustRegister(
		m.Connections, m.MaxConnections, m.ConnectionsTotal, m.DisconnectionsTotal, m.MessagesReceivedTotal,
		m.MessagesSentTotal, m.UpgradeRejectionsTotal, m.EventsPublishedTotal, m.EventsDeliveredTotal,
		m.RedisCommandDuration, m.RedisErrorsTotal, m.HeartbeatBatchDuration, m.OnlineUsersLocal,
		m.TransitionsTotal, m.ReapedConnectionsTotal, m.WatchedUsers, m.SlowConsumerDisconnects,
		m.EventsCoalescedTotal,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.Store = newStoreMetrics(reg)
	return m
}

// StoreMetrics are the series the Redis presence store owns (it is their
// only writer). The transport owns online_users_local; the store counts
// what it holds itself, which includes users kept online by an offline
// grace, under its own name.
type StoreMetrics struct {
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

func newStoreMetrics(reg prometheus.Registerer) *StoreMetrics {
	m := &StoreMetrics{
		UsersHeld: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "store_users_held",
			Help: "Users the Redis store holds on this replica: with a connection here, or an offline grace pending here."}),
		EventsCoalescedTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "redis_events_coalesced_total",
			Help: "Presence events received from Redis that a newer event of the same user replaced before delivery."}),
		RedisReseedsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "redis_reseeds_total",
			Help: "Redis clients replaced after the seed nodes file (REDIS_NODES_FILE) changed."}),
	}
	reg.MustRegister(m.UsersHeld, m.EventsCoalescedTotal, m.RedisReseedsTotal)
	return m
}
