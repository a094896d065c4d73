package gateway

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// Service renders the Service in front of gw's pods.
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
				{Name: "metrics", Port: MetricsPort, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}
