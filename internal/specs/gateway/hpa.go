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
// spec.autoscaling, or with spec.autoscaling.keda (KEDA makes its own).
func HPA(gw *presencev1alpha1.PresenceGateway) *autoscalingv2.HorizontalPodAutoscaler {
	as := gw.Spec.Autoscaling
	if as == nil || as.KEDA != nil {
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
			Behavior:       Behavior(as.Behavior),
		},
	}
}

// Scale-down defaults for long-lived connections: every pod removed sends
// all its clients reconnecting at once, so the fleet shrinks slowly and only
// after the load has stayed low.
const (
	scaleDownStabilizationSeconds = 300
	scaleDownPeriodSeconds        = 60
	scaleDownPods                 = 1
	scaleDownPercent              = 10
)

// Behavior is spec.autoscaling.behavior with the operator's default for a
// direction left out: scaleDown after a 5-minute stabilization window, at
// most one pod or 10% (whichever is more) per minute. scaleUp left out is
// Kubernetes' own default, which is fast.
func Behavior(b *autoscalingv2.HorizontalPodAutoscalerBehavior) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	out := &autoscalingv2.HorizontalPodAutoscalerBehavior{}
	if b != nil {
		out = b.DeepCopy()
	}
	if out.ScaleDown == nil {
		out.ScaleDown = &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr.To[int32](scaleDownStabilizationSeconds),
			SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PodsScalingPolicy, Value: scaleDownPods, PeriodSeconds: scaleDownPeriodSeconds},
				{Type: autoscalingv2.PercentScalingPolicy, Value: scaleDownPercent, PeriodSeconds: scaleDownPeriodSeconds},
			},
		}
	}
	return out
}
