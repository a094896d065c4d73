package gateway

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// Service renders the client Service in front of gw's pods. It carries the
// WebSocket port only, whatever its type: the metrics port (and pprof, when
// enabled) must not be reachable through a LoadBalancer or NodePort.
func Service(gw *presencev1alpha1.PresenceGateway) *corev1.Service {
	svcType := gw.Spec.Service.Type
	if svcType == "" {
		svcType = corev1.ServiceTypeClusterIP
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:        gw.Name,
			Namespace:   gw.Namespace,
			Labels:      ObjectLabels(gw),
			Annotations: maps.Clone(gw.Spec.Service.Annotations),
		},
		Spec: corev1.ServiceSpec{
			Type:     svcType,
			Selector: SelectorLabels(gw),
			Ports: []corev1.ServicePort{
				{Name: "ws", Port: servicePort(gw), TargetPort: intstr.FromString("ws"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

// MetricsServiceSuffix names the metrics Service: <name>-metrics.
const MetricsServiceSuffix = "-metrics"

// MetricsServiceName is the name of gw's metrics Service.
func MetricsServiceName(gw *presencev1alpha1.PresenceGateway) string {
	return gw.Name + MetricsServiceSuffix
}

// MetricsService renders the headless Service through which Prometheus
// (a ServiceMonitor, or KEDA's metrics-api scaler) finds every gateway pod's
// metrics port. Headless, it has no cluster IP and is never exposed outside
// the cluster.
func MetricsService(gw *presencev1alpha1.PresenceGateway) *corev1.Service {
	labels := ObjectLabels(gw)
	labels["app.kubernetes.io/component"] = "gateway-metrics"
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      MetricsServiceName(gw),
			Namespace: gw.Namespace,
			Labels:    labels,
		},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: corev1.ClusterIPNone,
			Selector:  SelectorLabels(gw),
			// Scrapers want every pod, ready or not (a pod failing its
			// readiness probe is exactly the one to look at).
			PublishNotReadyAddresses: true,
			Ports: []corev1.ServicePort{
				{Name: "metrics", Port: MetricsPort, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}
