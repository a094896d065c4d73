package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// TestKEDAScaledObject: spec.autoscaling.keda makes a ScaledObject (KEDA's
// own CRD, from its Go module) instead of an HPA, with the metrics-api
// trigger on the gateways' connections; KEDA's Ready condition becomes the
// Autoscaling condition; a steady ScaledObject is not written again; and
// dropping keda goes back to an HPA.
func TestKEDAScaledObject(t *testing.T) {
	requireRedisCluster(t) // a Ready RedisCluster, so that Degraded can come from the autoscaler
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", testRedisNodes[:1], "")
	gw := createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](2), MaxReplicas: 10,
			TargetConnectionsPerPod: ptr.To[int32](5000), KEDA: &presencev1alpha1.KEDASpec{PollingInterval: ptr.To[int32](15)}}
	})
	so := newScaledObject()
	so.SetNamespace(ns)
	so.SetName("chat")
	eventually(t, func() error { return get(ctx, so) }).Should(Succeed())
	g := NewWithT(t)
	spec := so.Object["spec"].(map[string]any)
	g.Expect(spec["scaleTargetRef"]).To(HaveKeyWithValue("kind", "Deployment"))
	g.Expect(spec["scaleTargetRef"]).To(HaveKeyWithValue("name", "chat"))
	g.Expect(spec["minReplicaCount"]).To(BeEquivalentTo(2))
	g.Expect(spec["maxReplicaCount"]).To(BeEquivalentTo(10))
	g.Expect(spec["pollingInterval"]).To(BeEquivalentTo(15))
	triggers, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
	g.Expect(triggers).To(ConsistOf(And(
		HaveKeyWithValue("type", "metrics-api"), HaveKeyWithValue("metricType", "AverageValue"),
		HaveKeyWithValue("metadata", And(
			HaveKeyWithValue("url", "http://chat-metrics."+ns+".svc:9090/metrics"),
			HaveKeyWithValue("valueLocation", "presence_gateway_connections"),
			HaveKeyWithValue("aggregateFromKubeServiceEndpoints", "true"),
			HaveKeyWithValue("aggregationType", "sum"),
			HaveKeyWithValue("targetValue", "5000"))))))
	g.Expect(metav1.GetControllerOf(so)).To(HaveField("UID", gw.UID))
	g.Expect(apierrors.IsNotFound(get(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}))).
		To(BeTrue(), "KEDA makes its own HPA; the operator makes none")
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionAutoscaling)).Should(
		statusReason(metav1.ConditionUnknown, presencev1alpha1.ReasonAutoscalerPending))

	// KEDA's operator (not running here) reports a trigger it cannot read.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := get(ctx, so); err != nil {
			return err
		}
		if err := unstructured.SetNestedSlice(so.Object, []any{map[string]any{
			"type": "Ready", "status": "False", "reason": "ScaledObjectCheckFailed", "message": "metrics-api: connection refused",
		}}, "status", "conditions"); err != nil {
			return err
		}
		return k8sClient.Status().Update(ctx, so)
	})).To(Succeed())
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionAutoscaling)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonScaledObjectNotReady),
		HaveField("Message", ContainSubstring("metrics-api: connection refused"))))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionDegraded)).Should(
		statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonScaledObjectNotReady))

	// A reconcile for another reason leaves the ScaledObject unwritten.
	g.Expect(get(ctx, so)).To(Succeed())
	rv := so.GetResourceVersion()
	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.PodLabels = map[string]string{"touch": "1"} })
	waitDeploymentLabel(t, ns, "chat", "touch")
	g.Expect(get(ctx, so)).To(Succeed())
	g.Expect(so.GetResourceVersion()).To(Equal(rv), "nothing in the ScaledObject changed, so nothing was written")

	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Autoscaling.KEDA = nil })
	eventually(t, func() bool { return apierrors.IsNotFound(get(ctx, so)) }).Should(BeTrue(), "the ScaledObject is deleted with spec.autoscaling.keda")
	eventually(t, func() error {
		return get(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}})
	}).Should(Succeed(), "back to the operator's HPA")
}

// TestKEDAMissing: without KEDA at start, spec.autoscaling.keda is an
// Autoscaling=False condition that says what to install.
func TestKEDAMissing(t *testing.T) {
	r := &PresenceGatewayReconciler{keda: false}
	gw := &presencev1alpha1.PresenceGateway{Spec: presencev1alpha1.PresenceGatewaySpec{Autoscaling: &presencev1alpha1.AutoscalingSpec{
		MaxReplicas: 4, TargetConnectionsPerPod: ptr.To[int32](100), KEDA: &presencev1alpha1.KEDASpec{}}}}
	obs := &gatewayObservation{}
	g := NewWithT(t)
	g.Expect(r.applyScaledObject(context.Background(), nil, gw, obs)).To(Succeed())
	c := kedaAutoscaling(obs.keda)
	g.Expect(c.status).To(Equal(metav1.ConditionFalse))
	g.Expect(c.reason).To(Equal(presencev1alpha1.ReasonKEDAMissing))
	g.Expect(c.message).To(ContainSubstring("keda.sh/v1alpha1 ScaledObject"))
}
