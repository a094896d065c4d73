package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// TestAutoscalingBehavior: without spec.autoscaling.behavior the HPA scales
// down slowly (5-minute window, one pod or 10% a minute) and up at
// Kubernetes' pace; a behaviour in the spec replaces the default of its
// direction only; removing it brings the default back.
func TestAutoscalingBehavior(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	gw := createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 10}
	})
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	scaleDown := func(g Gomega) *autoscalingv2.HPAScalingRules {
		g.Expect(get(ctx, hpa)).To(Succeed())
		g.Expect(hpa.Spec.Behavior).NotTo(BeNil())
		return hpa.Spec.Behavior.ScaleDown
	}
	defaultDown := And(
		HaveField("StabilizationWindowSeconds", HaveValue(Equal(int32(300)))),
		HaveField("SelectPolicy", HaveValue(Equal(autoscalingv2.MaxChangePolicySelect))),
		HaveField("Policies", ConsistOf(
			autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 60},
			autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 10, PeriodSeconds: 60},
		)),
	)
	eventually(t, scaleDown).Should(defaultDown)
	// Scale-up is the API server's default: fast.
	NewWithT(t).Expect(hpa.Spec.Behavior.ScaleUp).To(HaveField("StabilizationWindowSeconds", HaveValue(BeZero())))

	// The user's scale-down replaces the default; scale-up stays.
	mine := &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: ptr.To[int32](600),
		Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 120}},
	}
	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: mine}
	})
	eventually(t, scaleDown).Should(And(
		HaveField("StabilizationWindowSeconds", HaveValue(Equal(int32(600)))),
		HaveField("Policies", ConsistOf(autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 120})),
	))

	// Removed from the spec: the default again (server-side apply drops
	// the policy the operator no longer asks for).
	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling.Behavior = nil
	})
	eventually(t, scaleDown).Should(defaultDown)
}

// TestAutoscalingConditionMirrorsTheHPA: the HPA controller's conditions
// (written here by hand: envtest runs no kube-controller-manager) reach the
// PresenceGateway. An HPA that cannot read its metric is Autoscaling=False
// and Degraded=True with the HPA's message; the gateways stay Ready (on the
// real Redis Cluster).
func TestAutoscalingConditionMirrorsTheHPA(t *testing.T) {
	requireRedisCluster(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "real", testRedisNodes, "")
	createGateway(t, ns, "chat", "real", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 10, TargetConnectionsPerPod: ptr.To[int32](5000)}
	})
	markRolledOut(t, waitDeployment(t, ns, "chat"))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionAutoscaling)).
		Should(statusReason(metav1.ConditionUnknown, presencev1alpha1.ReasonAutoscalerPending))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).
		Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReady))

	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	setHPAConditions := func(conds ...autoscalingv2.HorizontalPodAutoscalerCondition) {
		t.Helper()
		eventually(t, func() error {
			if err := get(ctx, hpa); err != nil {
				return err
			}
			now := metav1.Now()
			for i := range conds {
				conds[i].LastTransitionTime = now
			}
			hpa.Status.Conditions = conds
			hpa.Status.DesiredReplicas = 2
			return k8sClient.Status().Update(ctx, hpa)
		}).Should(Succeed())
	}
	const noMetric = "the HPA was unable to compute the replica count: unable to get metric presence_gateway_connections: no custom metrics API (custom.metrics.k8s.io) registered"
	setHPAConditions(
		autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, Reason: "SucceededGetScale", Message: "the HPA controller was able to get the target's current scale"},
		autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse, Reason: "FailedGetPodsMetric", Message: noMetric},
	)
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionAutoscaling)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonAutoscalerMetricsUnavailable),
		HaveField("Message", ContainSubstring(noMetric)),
	))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionDegraded)).Should(And(
		statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonAutoscalerMetricsUnavailable),
		HaveField("Message", ContainSubstring("FailedGetPodsMetric")),
	))
	NewWithT(t).Expect(gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)(NewWithT(t))).
		To(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReady), "the pods serve: Ready stays")

	// The metric is served: Autoscaling=True, Degraded clears.
	setHPAConditions(
		autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, Reason: "ReadyForNewScale", Message: "recommended size matches current size"},
		autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionTrue, Reason: "ValidMetricFound", Message: "the HPA was able to successfully calculate a replica count from pods metric presence_gateway_connections"},
		autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingLimited, Status: corev1.ConditionFalse, Reason: "DesiredWithinRange", Message: "the desired count is within the acceptable range"},
	)
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionAutoscaling)).
		Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonScalingActive))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionDegraded)).
		Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonAsExpected))

	// At maxReplicas: still True, and says so.
	setHPAConditions(
		autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, Reason: "ReadyForNewScale", Message: "recommended size matches current size"},
		autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionTrue, Reason: "ValidMetricFound", Message: "ok"},
		autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingLimited, Status: corev1.ConditionTrue, Reason: "TooManyReplicas", Message: "the desired replica count is more than the maximum replica count"},
	)
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionAutoscaling)).Should(And(
		statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonScalingLimited),
		HaveField("Message", ContainSubstring("more than the maximum")),
	))

	// Autoscaling turned off: the condition goes.
	gw := &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = nil
	})
	eventually(t, func(g Gomega) *metav1.Condition {
		g.Expect(get(ctx, gw)).To(Succeed())
		return meta.FindStatusCondition(gw.Status.Conditions, presencev1alpha1.ConditionAutoscaling)
	}).Should(BeNil())
}
