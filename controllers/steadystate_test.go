package controllers

import (
	"context"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// TestSteadyStateReconcilesNothing: once a gateway's objects and status are
// settled, nothing triggers another reconcile of it (our own writes do not
// wake the controller, and RedisCluster checks that find nothing new write
// nothing). Counted with controller-runtime's reconcile_total metric.
func TestSteadyStateReconcilesNothing(t *testing.T) {
	requireRedisCluster(t)
	ns := newNamespace(t)
	createRedisCluster(t, ns, "real", testRedisNodes, "")
	createGateway(t, ns, "chat", "real", nil)
	markRolledOut(t, waitDeployment(t, ns, "chat"))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReady))

	// Let the last events drain, then count across two RedisCluster checks.
	reconciles := gatewayReconciles.in(ns)
	var before int
	eventually(t, func(g Gomega) {
		n := reconciles()
		g.Consistently(reconciles).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(Equal(n))
		before = n
	}).Should(Succeed())
	NewWithT(t).Consistently(reconciles).
		WithTimeout(2*testCheckInterval + time.Second).WithPolling(200 * time.Millisecond).Should(Equal(before))
	NewWithT(t).Expect(reconcileTotal(NewWithT(t), "rediscluster")).To(BeNumerically(">", 0), "the RedisCluster checks keep running")
}

// reconcileTotal sums controller_runtime_reconcile_total of one controller,
// in every namespace (gatewayReconciles counts one namespace's).
func reconcileTotal(g Gomega, controller string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// TestIdleReconcilesWriteNothing: a reconcile that finds the objects as the
// spec wants them sends no write at all, not even a server-side apply that
// the API server would find to change nothing. Reconciles are woken here by
// another manager's annotation on the owned Service (Owns wakes the
// controller; RedisCluster label changes no longer do, see
// RedisClusterChanged), which changes nothing the operator owns.
func TestIdleReconcilesWriteNothing(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 4}
		gw.Spec.Service.Annotations = map[string]string{"example.test/lb": "yes"}
	})
	markRolledOut(t, waitDeployment(t, ns, "chat"))

	// Settled: the count of writes stops moving.
	writes := gatewayWrites.in(ns)
	var before int
	eventually(t, func(g Gomega) {
		n := writes()
		g.Consistently(writes).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(Equal(n))
		before = n
	}).Should(Succeed())

	reconciles := gatewayReconciles.in(ns)
	woken := reconciles()
	for i := range 3 {
		eventually(t, func() error {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
			if err := get(ctx, svc); err != nil {
				return err
			}
			metav1.SetMetaDataAnnotation(&svc.ObjectMeta, "example.test/touch", strconv.Itoa(i))
			return k8sClient.Update(ctx, svc)
		}).Should(Succeed())
	}
	eventually(t, reconciles).Should(BeNumerically(">", woken))
	NewWithT(t).Consistently(writes).WithTimeout(time.Second).WithPolling(100*time.Millisecond).Should(Equal(before),
		"an idle reconcile wrote")
}
