package gateway

import (
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// KEDA's ScaledObject, rendered as an unstructured object: KEDA's Go API
// package (github.com/kedacore/keda/v2/apis/keda/v1alpha1) pulls in some
// 600 packages of KEDA's own, which the operator does not need to write
// the dozen fields below.
const (
	KEDAGroup = "keda.sh"
)

// ScaledObjectGVK is the kind the operator creates in KEDA mode.
var ScaledObjectGVK = schema.GroupVersionKind{Group: KEDAGroup, Version: "v1alpha1", Kind: "ScaledObject"}

// ScaledObject renders the KEDA ScaledObject of spec.autoscaling.keda, nil
// without it. It scales the gateway Deployment, whose spec.replicas the
// operator already leaves to the autoscaler (as with the HPA), between
// minReplicas and maxReplicas, with the same behavior as the HPA mode.
//
// The connections trigger is KEDA's metrics-api scaler reading the
// Prometheus text of every ready gateway pod behind the <name>-metrics
// Service (aggregateFromKubeServiceEndpoints) and summing them
// (aggregationType sum). Its metric type is AverageValue, so the HPA that
// KEDA makes divides that sum by the number of pods and compares it with
// targetConnectionsPerPod: the same per-pod target as the HPA Pods metric.
func ScaledObject(gw *presencev1alpha1.PresenceGateway) *unstructured.Unstructured {
	as := gw.Spec.Autoscaling
	if as == nil || as.KEDA == nil {
		return nil
	}
	var triggers []any
	if n := as.TargetConnectionsPerPod; n != nil {
		triggers = append(triggers, map[string]any{
			"type":       "metrics-api",
			"metricType": "AverageValue",
			"metadata": map[string]any{
				"url":                               fmt.Sprintf("http://%s.%s.svc:%d%s", MetricsServiceName(gw), gw.Namespace, MetricsPort, metricsPath),
				"format":                            "prometheus",
				"valueLocation":                     connectionsMetric,
				"aggregateFromKubeServiceEndpoints": "true",
				"aggregationType":                   "sum",
				"targetValue":                       strconv.Itoa(int(*n)),
			},
		})
	}
	if cpu := as.TargetCPUUtilizationPercentage; cpu != nil {
		triggers = append(triggers, map[string]any{
			"type":       "cpu",
			"metricType": "Utilization",
			"metadata":   map[string]any{"value": strconv.Itoa(int(*cpu))},
		})
	}
	behavior, err := runtime.DefaultUnstructuredConverter.ToUnstructured(Behavior(as.Behavior))
	if err != nil {
		panic(fmt.Sprintf("HPA behavior to unstructured: %v", err)) // a typed struct always converts
	}
	spec := map[string]any{
		"scaleTargetRef":  map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": gw.Name},
		"minReplicaCount": int64(ptr.Deref(as.MinReplicas, defaultMinReplicas)),
		"maxReplicaCount": int64(as.MaxReplicas),
		"advanced": map[string]any{
			"horizontalPodAutoscalerConfig": map[string]any{"behavior": behavior},
		},
		"triggers": triggers,
	}
	if p := as.KEDA.PollingInterval; p != nil {
		spec["pollingInterval"] = int64(*p)
	}
	labels := map[string]any{}
	for k, v := range ObjectLabels(gw) {
		labels[k] = v
	}
	so := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": gw.Name, "namespace": gw.Namespace, "labels": labels},
		"spec":     spec,
	}}
	so.SetGroupVersionKind(ScaledObjectGVK)
	return so
}
