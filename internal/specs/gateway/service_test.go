package gateway

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

func TestService(t *testing.T) {
	g := NewWithT(t)
	svc := Service(testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Service = presencev1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Port: 443, Annotations: map[string]string{"lb": "internal"}}
	}))
	g.Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeLoadBalancer))
	g.Expect(svc.Annotations).To(HaveKeyWithValue("lb", "internal"))
	g.Expect(svc.Spec.Ports[0]).To(And(HaveField("Port", int32(443)), HaveField("TargetPort", intstr.FromString("ws"))))
	g.Expect(svc.Spec.Ports).To(HaveLen(1), "the client Service carries WebSocket traffic only, never the metrics port")
	g.Expect(Endpoint(testGateway(nil))).To(Equal("ws://chat.chat.svc:80"))
}

func TestMetricsService(t *testing.T) {
	g := NewWithT(t)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Service.Type = corev1.ServiceTypeLoadBalancer })
	svc := MetricsService(gw)
	g.Expect(svc.Name).To(Equal("chat-metrics"))
	g.Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeClusterIP), "whatever the client Service's type")
	g.Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone), "headless")
	g.Expect(svc.Spec.Selector).To(Equal(SelectorLabels(gw)))
	g.Expect(svc.Spec.Ports).To(ConsistOf(And(HaveField("Name", "metrics"), HaveField("Port", int32(9090)), HaveField("TargetPort", intstr.FromString("metrics")))))
	g.Expect(svc.Labels).NotTo(Equal(Service(gw).Labels), "a ServiceMonitor can select the metrics Service alone")
}
