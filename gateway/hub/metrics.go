package hub

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/metrics"
)

// Metrics are the series the hub owns.
type Metrics struct {
	EventsDeliveredTotal prometheus.Counter
}

// NewMetrics creates the hub's series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsDeliveredTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: metrics.Namespace, Name: "presence_events_delivered_total",
			Help: "Presence frames queued to subscribed clients on this replica."}),
	}
	reg.MustRegister(m.EventsDeliveredTotal)
	return m
}
