package gateway

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// HPA renders gw's HorizontalPodAutoscaler, or nil without
// spec.autoscaling.
func HPA(gw *presencev1alpha1.PresenceGateway) *autoscalingv2.HorizontalPodAutoscaler {
	as := gw.Spec.Autoscaling
	if as == nil {
		return nil
	}
	var metrics []autoscalingv2.MetricSpec
	cpu := as.TargetCPUUtilizationPercentage
	if cpu == nil && as.TargetConnectionsPerPod == nil {
		cpu = ptr.To[int32](defaultCPUTargetPercentage)
	}
	if cpu != nil {
		metrics = append(metrics, autoscalingv2.MetricSpec{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name:   corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(*cpu)},
			},
		})
	}
	if n := as.TargetConnectionsPerPod; n != nil {
		metrics = append(metrics, autoscalingv2.MetricSpec{
			Type: autoscalingv2.PodsMetricSourceType,
			Pods: &autoscalingv2.PodsMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: connectionsMetric},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(int64(*n), resource.DecimalSI)},
			},
		})
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: gw.Name, Namespace: gw.Namespace, Labels: ObjectLabels(gw)},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: gw.Name},
			MinReplicas:    ptr.To(ptr.Deref(as.MinReplicas, defaultMinReplicas)),
			MaxReplicas:    as.MaxReplicas,
			Metrics:        metrics,
		},
	}
}
