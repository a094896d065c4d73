package gateway

import (
	"testing"

	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

func TestHPA(t *testing.T) {
	tests := []struct {
		name        string
		autoscaling *presencev1alpha1.AutoscalingSpec
		wantNil     bool
		wantMin     int32
		wantMetrics []autoscalingv2.MetricSourceType
	}{
		{name: "off", wantNil: true},
		{name: "default CPU target", autoscaling: &presencev1alpha1.AutoscalingSpec{MaxReplicas: 5}, wantMin: 2,
			wantMetrics: []autoscalingv2.MetricSourceType{autoscalingv2.ResourceMetricSourceType}},
		{name: "CPU and connections", autoscaling: &presencev1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](3), MaxReplicas: 20,
			TargetCPUUtilizationPercentage: ptr.To[int32](70), TargetConnectionsPerPod: ptr.To[int32](5000)}, wantMin: 3,
			wantMetrics: []autoscalingv2.MetricSourceType{autoscalingv2.ResourceMetricSourceType, autoscalingv2.PodsMetricSourceType}},
		{name: "connections only", autoscaling: &presencev1alpha1.AutoscalingSpec{MaxReplicas: 20, TargetConnectionsPerPod: ptr.To[int32](100)}, wantMin: 2,
			wantMetrics: []autoscalingv2.MetricSourceType{autoscalingv2.PodsMetricSourceType}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			hpa := HPA(testGateway(func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Autoscaling = tt.autoscaling }))
			if tt.wantNil {
				g.Expect(hpa).To(BeNil())
				return
			}
			g.Expect(*hpa.Spec.MinReplicas).To(Equal(tt.wantMin))
			g.Expect(hpa.Spec.ScaleTargetRef).To(Equal(autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "chat"}))
			var types []autoscalingv2.MetricSourceType
			for _, m := range hpa.Spec.Metrics {
				types = append(types, m.Type)
				if m.Type == autoscalingv2.PodsMetricSourceType {
					g.Expect(m.Pods.Metric.Name).To(Equal("presence_gateway_connections"))
					g.Expect(m.Pods.Target.AverageValue.Value()).To(Equal(int64(*tt.autoscaling.TargetConnectionsPerPod)))
				}
			}
			g.Expect(types).To(Equal(tt.wantMetrics))
		})
	}
}

func TestBehavior(t *testing.T) {
	g := NewWithT(t)
	def := Behavior(nil)
	g.Expect(def.ScaleUp).To(BeNil(), "scale-up is left to the API server's default")
	g.Expect(def.ScaleDown.StabilizationWindowSeconds).To(HaveValue(Equal(int32(300))))
	g.Expect(def.ScaleDown.SelectPolicy).To(HaveValue(Equal(autoscalingv2.MaxChangePolicySelect)))
	g.Expect(def.ScaleDown.Policies).To(ConsistOf(
		autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 60},
		autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 10, PeriodSeconds: 60},
	))

	// A direction the user gives is theirs; the other keeps its default;
	// the spec is not modified.
	up := &autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 30}}}
	spec := &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: up}
	got := Behavior(spec)
	g.Expect(got.ScaleUp).To(Equal(up))
	g.Expect(got.ScaleDown).To(Equal(def.ScaleDown))
	g.Expect(spec.ScaleDown).To(BeNil(), "Behavior wrote into the spec")

	down := &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](0)}
	g.Expect(Behavior(&autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: down}).ScaleDown).To(Equal(down))

	hpa := HPA(testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 5}
	}))
	g.Expect(hpa.Spec.Behavior).To(Equal(def))
}
