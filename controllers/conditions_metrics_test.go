package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// conditionSeries gathers the collector and returns, for one resource, each
// condition's status values: condition -> status -> value.
func conditionSeries(g Gomega, reg *prometheus.Registry, kind, ns, name string) map[string]map[string]float64 {
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]map[string]float64{}
	for _, f := range families {
		if f.GetName() != "presence_operator_resource_condition" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labelMap(m)
			if l["kind"] != kind || l["namespace"] != ns || l["name"] != name {
				continue
			}
			if out[l["condition"]] == nil {
				out[l["condition"]] = map[string]float64{}
			}
			out[l["condition"]][l["status"]] = m.GetGauge().GetValue()
		}
	}
	return out
}

func labelMap(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// The condition metrics say what `kubectl get` says, for both kinds, and
// forget a deleted resource.
func TestConditionMetricsFollowStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(&ConditionCollector{Reader: testCache})

	// A gateway whose RedisCluster does not exist: RedisReady=False.
	gw := createGateway(t, ns, "chat", "missing-redis", nil)
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionRedisReady)).
		Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotFound))
	eventually(t, func(g Gomega) {
		series := conditionSeries(g, reg, "PresenceGateway", ns, "chat")
		g.Expect(series).To(HaveKeyWithValue(presencev1alpha1.ConditionRedisReady,
			map[string]float64{"True": 0, "False": 1, "Unknown": 0}))
		g.Expect(get(ctx, gw)).To(Succeed())
		// Every condition of the status, and nothing else, is exported.
		g.Expect(series).To(HaveLen(len(gw.Status.Conditions)))
		for _, c := range gw.Status.Conditions {
			g.Expect(series[c.Type][string(c.Status)]).To(BeNumerically("==", 1), "condition %s", c.Type)
		}
	}).Should(Succeed())

	// Its RedisCluster appears and is checked: its series appear.
	createRedisCluster(t, ns, "missing-redis", seedNodes, "")
	eventually(t, func(g Gomega) {
		rc := &presencev1alpha1.RedisCluster{}
		rc.Namespace, rc.Name = ns, "missing-redis"
		g.Expect(get(ctx, rc)).To(Succeed())
		ready := meta.FindStatusCondition(rc.Status.Conditions, presencev1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		series := conditionSeries(g, reg, "RedisCluster", ns, "missing-redis")
		g.Expect(series[presencev1alpha1.ConditionReady][string(ready.Status)]).To(BeNumerically("==", 1))
	}).Should(Succeed())

	// A condition that appears on the gateway (Paused) appears in the series.
	g.Expect(get(ctx, gw)).To(Succeed())
	setPaused(t, gw, true)
	eventually(t, func(g Gomega) {
		g.Expect(conditionSeries(g, reg, "PresenceGateway", ns, "chat")).To(HaveKeyWithValue(presencev1alpha1.ConditionPaused,
			map[string]float64{"True": 1, "False": 0, "Unknown": 0}))
	}).Should(Succeed())

	g.Expect(k8sClient.Delete(ctx, gw)).To(Succeed())
	eventually(t, func(g Gomega) {
		g.Expect(conditionSeries(g, reg, "PresenceGateway", ns, "chat")).To(BeEmpty())
	}).Should(Succeed())
}
