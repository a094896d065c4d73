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
	g.Expect(Endpoint(testGateway(nil))).To(Equal("ws://chat.chat.svc:80"))
}
