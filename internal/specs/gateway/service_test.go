package gateway

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

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

func TestServiceOptions(t *testing.T) {
	g := NewWithT(t)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Service = presencev1alpha1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Port: 80,
			Labels:                   map[string]string{"team": "chat", "app.kubernetes.io/managed-by": "someone-else"},
			LoadBalancerClass:        ptr.To("service.k8s.aws/nlb"),
			LoadBalancerSourceRanges: []string{"203.0.113.0/24"},
			ExternalTrafficPolicy:    corev1.ServiceExternalTrafficPolicyLocal,
		}
	})
	svc := Service(gw)
	g.Expect(svc.Labels).To(HaveKeyWithValue("team", "chat"))
	g.Expect(svc.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "presence-operator"), "the operator's labels win: its cache selects by them")
	g.Expect(svc.Spec.LoadBalancerClass).To(Equal(ptr.To("service.k8s.aws/nlb")))
	g.Expect(svc.Spec.LoadBalancerSourceRanges).To(Equal([]string{"203.0.113.0/24"}))
	g.Expect(svc.Spec.ExternalTrafficPolicy).To(Equal(corev1.ServiceExternalTrafficPolicyLocal))

	plain := Service(testGateway(nil))
	g.Expect(plain.Spec.LoadBalancerClass).To(BeNil())
	g.Expect(plain.Spec.LoadBalancerSourceRanges).To(BeNil())
	g.Expect(plain.Spec.ExternalTrafficPolicy).To(BeEmpty(), "left to the API server's default")
}

func TestIngress(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Ingress(testGateway(nil))).To(BeNil())
	ing := Ingress(testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Ingress = &presencev1alpha1.IngressSpec{ClassName: ptr.To("nginx"), Host: "presence.example.com",
			TLSSecretName: "presence-tls", Annotations: map[string]string{"cert-manager.io/cluster-issuer": "le"}}
	}))
	g.Expect(ing.Name).To(Equal("chat"))
	g.Expect(ing.Labels).To(Equal(ObjectLabels(testGateway(nil))))
	g.Expect(ing.Annotations).To(HaveKeyWithValue("cert-manager.io/cluster-issuer", "le"))
	g.Expect(ing.Spec.IngressClassName).To(Equal(ptr.To("nginx")))
	g.Expect(ing.Spec.TLS).To(Equal([]networkingv1.IngressTLS{{Hosts: []string{"presence.example.com"}, SecretName: "presence-tls"}}))
	g.Expect(ing.Spec.Rules).To(HaveLen(1))
	rule := ing.Spec.Rules[0]
	g.Expect(rule.Host).To(Equal("presence.example.com"))
	g.Expect(rule.HTTP.Paths).To(ConsistOf(And(
		HaveField("Path", "/"), HaveField("PathType", ptr.To(networkingv1.PathTypePrefix)),
		HaveField("Backend.Service.Name", "chat"), HaveField("Backend.Service.Port.Name", "ws"))),
		"to the client Service's WebSocket port, never the metrics one")
}

func TestEndpoints(t *testing.T) {
	g := NewWithT(t)
	inCluster := presencev1alpha1.GatewayEndpoint{Scope: "InCluster", Via: "Service", URL: "ws://chat.chat.svc:80"}
	g.Expect(Endpoints(testGateway(nil), nil, false)).To(Equal([]presencev1alpha1.GatewayEndpoint{inCluster}))

	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
		gw.Spec.Ingress = &presencev1alpha1.IngressSpec{Host: "presence.example.com", Path: "/ws", TLSSecretName: "tls"}
	})
	svc := Service(gw)
	g.Expect(Endpoints(gw, svc, false)).To(Equal([]presencev1alpha1.GatewayEndpoint{inCluster,
		{Scope: "External", Via: "Ingress", URL: "wss://presence.example.com/ws"}}), "no load balancer address yet")
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.7"}, {Hostname: "lb.example.net"}}
	g.Expect(Endpoints(gw, svc, false)).To(Equal([]presencev1alpha1.GatewayEndpoint{inCluster,
		{Scope: "External", Via: "Ingress", URL: "wss://presence.example.com/ws"},
		{Scope: "External", Via: "LoadBalancer", URL: "ws://198.51.100.7:80/"},
		{Scope: "External", Via: "LoadBalancer", URL: "ws://lb.example.net:80/"},
	}))
	gw.Spec.Ingress.TLSSecretName = ""
	g.Expect(Endpoints(gw, nil, false)[1].URL).To(Equal("ws://presence.example.com/ws"), "without a certificate, plain ws")
}

func TestPodMonitor(t *testing.T) {
	g := NewWithT(t)
	g.Expect(PodMonitor(testGateway(nil))).To(BeNil())
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Monitoring = &presencev1alpha1.MonitoringSpec{PodMonitor: &presencev1alpha1.PodMonitorSpec{
			Labels: map[string]string{"release": "prom", "app.kubernetes.io/managed-by": "someone-else"}}}
	})
	pm := PodMonitor(gw)
	g.Expect(pm.Name).To(Equal("chat"))
	g.Expect(pm.Labels).To(HaveKeyWithValue("release", "prom"))
	g.Expect(pm.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "presence-operator"))
	g.Expect(pm.Spec.Selector.MatchLabels).To(Equal(SelectorLabels(gw)))
	g.Expect(pm.Spec.PodMetricsEndpoints).To(HaveLen(1))
	ep := pm.Spec.PodMetricsEndpoints[0]
	g.Expect(ep.Port).To(Equal(ptr.To("metrics")), "the container port the gateway serves /metrics on")
	g.Expect(ep.Path).To(Equal("/metrics"))
	g.Expect(ep.Interval).To(BeEmpty(), "Prometheus' own interval")
}
