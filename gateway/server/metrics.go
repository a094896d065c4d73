package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/metrics"
)

// Metrics are the series the transport owns: sockets, frames, upgrades and
// the users with an open socket here.
type Metrics struct {
	Connections             prometheus.Gauge
	MaxConnections          prometheus.Gauge
	ConnectionsTotal        prometheus.Counter
	DisconnectionsTotal     *prometheus.CounterVec // reason
	MessagesReceivedTotal   *prometheus.CounterVec // type
	MessagesSentTotal       *prometheus.CounterVec // type
	UpgradeRejectionsTotal  *prometheus.CounterVec // reason
	OnlineUsersLocal        prometheus.Gauge
	SlowConsumerDisconnects prometheus.Counter
	EventsCoalescedTotal    prometheus.Counter
}

// NewMetrics creates the transport's series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ns := metrics.Namespace
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "connections",
			Help: "Open WebSocket connections on this replica."}),
		MaxConnections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "max_connections",
			Help: "MAX_CONNECTIONS of this replica: the open connections at which it refuses upgrades and reports not ready (0: no limit)."}),
		ConnectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "connections_total",
			Help: "WebSocket connections accepted."}),
		DisconnectionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "disconnections_total",
			Help: "WebSocket connections closed, by reason."}, []string{"reason"}),
		MessagesReceivedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_received_total",
			Help: "Client frames received, by message type."}, []string{"type"}),
		MessagesSentTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_sent_total",
			Help: "Frames sent to clients, by message type."}, []string{"type"}),
		UpgradeRejectionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "upgrade_rejections_total",
			Help: "WebSocket upgrades refused, by reason."}, []string{"reason"}),
		OnlineUsersLocal: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "online_users_local",
			Help: "Distinct users with at least one open WebSocket connection on this replica (users kept online by an offline grace are not counted: see store_users_held)."}),
		SlowConsumerDisconnects: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "slow_consumer_disconnects_total",
			Help: "Connections closed because the client did not read its frames."}),
		EventsCoalescedTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_coalesced_total",
			Help: "Presence events that replaced a pending event about the same user in a client's send queue (latest state wins)."}),
	}
	reg.MustRegister(m.Connections, m.MaxConnections, m.ConnectionsTotal, m.DisconnectionsTotal,
		m.MessagesReceivedTotal, m.MessagesSentTotal, m.UpgradeRejectionsTotal, m.OnlineUsersLocal,
		m.SlowConsumerDisconnects, m.EventsCoalescedTotal)
	return m
}
