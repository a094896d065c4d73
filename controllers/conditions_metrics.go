package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// ConditionCollector exports the status conditions of every PresenceGateway
// and RedisCluster the operator watches as
//
//	presence_operator_resource_condition{kind, namespace, name, condition, status} 0|1
//
// one series per status value (True, False, Unknown), 1 for the current one,
// in the shape kube-state-metrics gives built-in kinds' conditions. It reads
// the operator's informer cache when Prometheus scrapes, so it costs no API
// call, needs no bookkeeping when a resource is deleted, and alert rules
// (the chart's PrometheusRule) need no kube-state-metrics configuration for
// our kinds.
type ConditionCollector struct {
	// Reader lists the resources; the manager's cache.
	Reader client.Reader
	// Timeout bounds one scrape's listing (default 5s).
	Timeout time.Duration
}

var conditionDesc = prometheus.NewDesc("presence_operator_resource_condition",
	"Status conditions of the PresenceGateways and RedisClusters the operator watches: 1 for the condition's current status, 0 for the others.",
	[]string{"kind", "namespace", "name", "condition", "status"}, nil)

var conditionStatuses = []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown}

// Describe implements prometheus.Collector.
func (c *ConditionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- conditionDesc }

// Collect implements prometheus.Collector.
func (c *ConditionCollector) Collect(ch chan<- prometheus.Metric) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	log := logf.Log.WithName("condition-metrics")

	var gateways presencev1alpha1.PresenceGatewayList
	if err := c.Reader.List(ctx, &gateways); err != nil {
		log.Error(err, "listing PresenceGateways for /metrics")
		ch <- prometheus.NewInvalidMetric(conditionDesc, err)
	} else {
		for i := range gateways.Items {
			gw := &gateways.Items[i]
			emitConditions(ch, "PresenceGateway", gw.Namespace, gw.Name, gw.Status.Conditions)
		}
	}
	var clusters presencev1alpha1.RedisClusterList
	if err := c.Reader.List(ctx, &clusters); err != nil {
		log.Error(err, "listing RedisClusters for /metrics")
		ch <- prometheus.NewInvalidMetric(conditionDesc, err)
	} else {
		for i := range clusters.Items {
			rc := &clusters.Items[i]
			emitConditions(ch, "RedisCluster", rc.Namespace, rc.Name, rc.Status.Conditions)
		}
	}
}

func emitConditions(ch chan<- prometheus.Metric, kind, namespace, name string, conds []metav1.Condition) {
	for _, cond := range conds {
		for _, s := range conditionStatuses {
			v := 0.0
			if cond.Status == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(conditionDesc, prometheus.GaugeValue, v, kind, namespace, name, cond.Type, string(s))
		}
	}
}
