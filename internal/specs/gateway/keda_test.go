package gateway

import (
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

func TestScaledObject(t *testing.T) {
	g := NewWithT(t)
	g.Expect(ScaledObject(testGateway(nil))).To(BeNil())
	hpaMode := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 5}
	})
	g.Expect(ScaledObject(hpaMode)).To(BeNil())
	g.Expect(HPA(hpaMode)).NotTo(BeNil())

	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 8, TargetConnectionsPerPod: ptr.To[int32](3000),
			TargetCPUUtilizationPercentage: ptr.To[int32](70), KEDA: &presencev1alpha1.KEDASpec{}}
	})
	g.Expect(HPA(gw)).To(BeNil(), "KEDA makes its own HPA")
	so := ScaledObject(gw)
	g.Expect(so.GroupVersionKind()).To(Equal(ScaledObjectGVK))
	g.Expect(so.GetName()).To(Equal("chat"))
	g.Expect(so.GetLabels()).To(Equal(ObjectLabels(gw)))
	min, _, _ := unstructured.NestedInt64(so.Object, "spec", "minReplicaCount")
	g.Expect(min).To(Equal(int64(2)), "minReplicas' default")
	_, hasPolling, _ := unstructured.NestedFieldNoCopy(so.Object, "spec", "pollingInterval")
	g.Expect(hasPolling).To(BeFalse(), "KEDA's default")
	down, _, _ := unstructured.NestedMap(so.Object, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown")
	g.Expect(down).To(HaveKeyWithValue("stabilizationWindowSeconds", int64(300)), "the same slow scale-down as the HPA mode")
	triggers, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
	g.Expect(triggers).To(HaveLen(2))
	g.Expect(triggers[0]).To(HaveKeyWithValue("metadata", HaveKeyWithValue("url", "http://chat-metrics.chat.svc:9090/metrics")))
	g.Expect(triggers[1]).To(And(HaveKeyWithValue("type", "cpu"), HaveKeyWithValue("metadata", HaveKeyWithValue("value", "70"))))
}
