package gateway

import (
	"maps"
	"net"
	"slices"
	"strconv"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// Service renders the client Service in front of gw's pods. It carries the
// WebSocket port only, whatever its type: the metrics port (and pprof, when
// enabled) must not be reachable through a LoadBalancer or NodePort.
func Service(gw *presencev1alpha1.PresenceGateway) *corev1.Service {
	spec := gw.Spec.Service
	svcType := spec.Type
	if svcType == "" {
		svcType = corev1.ServiceTypeClusterIP
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, ObjectLabels(gw)) // ours win: the operator's cache selects by them
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:        gw.Name,
			Namespace:   gw.Namespace,
			Labels:      labels,
			Annotations: maps.Clone(spec.Annotations),
		},
		Spec: corev1.ServiceSpec{
			Type:     svcType,
			Selector: SelectorLabels(gw),
			Ports: []corev1.ServicePort{
				{Name: "ws", Port: servicePort(gw), TargetPort: intstr.FromString("ws"), Protocol: corev1.ProtocolTCP},
			},
			LoadBalancerClass:        spec.LoadBalancerClass,
			LoadBalancerSourceRanges: slices.Clone(spec.LoadBalancerSourceRanges),
			ExternalTrafficPolicy:    spec.ExternalTrafficPolicy,
		},
	}
}

// Ingress renders the Ingress of spec.ingress, nil without it: one rule
// for the host, the path prefix routed to the client Service's ws port,
// and TLS for the host when a certificate Secret is named.
func Ingress(gw *presencev1alpha1.PresenceGateway) *networkingv1.Ingress {
	in := gw.Spec.Ingress
	if in == nil {
		return nil
	}
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name:        gw.Name,
			Namespace:   gw.Namespace,
			Labels:      ObjectLabels(gw),
			Annotations: maps.Clone(in.Annotations),
		},
		Spec: networkingv1.IngressSpec{
			IngressClassName: in.ClassName,
			Rules: []networkingv1.IngressRule{{
				Host: in.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     routePath(in.Path),
						PathType: ptr.To(networkingv1.PathTypePrefix),
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: gw.Name,
							Port: networkingv1.ServiceBackendPort{Name: "ws"},
						}},
					}},
				}},
			}},
		},
	}
	if in.TLSSecretName != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{in.Host}, SecretName: in.TLSSecretName}}
	}
	return ing
}

// HTTPRoute renders the HTTPRoute of spec.httpRoute, nil without it: the
// path prefix of its hostnames routed to the client Service's port.
func HTTPRoute(gw *presencev1alpha1.PresenceGateway) *gatewayv1.HTTPRoute {
	hr := gw.Spec.HTTPRoute
	if hr == nil {
		return nil
	}
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: gw.Name, Namespace: gw.Namespace, Labels: ObjectLabels(gw)},
		Spec: gatewayv1.HTTPRouteSpec{
			Rules: []gatewayv1.HTTPRouteRule{{
				Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
					Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To(routePath(hr.Path)),
				}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{
						Name: gatewayv1.ObjectName(gw.Name), Port: ptr.To(servicePort(gw)),
					},
				}}},
			}},
		},
	}
	for _, p := range hr.ParentRefs {
		ref := gatewayv1.ParentReference{Name: gatewayv1.ObjectName(p.Name)}
		if p.Namespace != "" {
			ref.Namespace = ptr.To(gatewayv1.Namespace(p.Namespace))
		}
		if p.SectionName != "" {
			ref.SectionName = ptr.To(gatewayv1.SectionName(p.SectionName))
		}
		route.Spec.ParentRefs = append(route.Spec.ParentRefs, ref)
	}
	for _, h := range hr.Hostnames {
		route.Spec.Hostnames = append(route.Spec.Hostnames, gatewayv1.Hostname(h))
	}
	return route
}

// routePath is the path prefix of an Ingress or HTTPRoute: "/" when the
// spec leaves it out (the API server defaults it, but objects built in
// tests need not be).
func routePath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// Endpoints are the URLs of gw's gateways: the client Service's in-cluster
// one, the Ingress's (wss:// with a certificate), and the load balancer's
// once svc (the client Service as last written, nil when unknown) has an
// address.
//
// For spec.httpRoute, routeTLS says whether the listeners the route
// attaches to terminate TLS (wss://), as the reconciler read them from the
// parent Gateways; its hostnames are listed only when the spec names some.
func Endpoints(gw *presencev1alpha1.PresenceGateway, svc *corev1.Service, routeTLS bool) []presencev1alpha1.GatewayEndpoint {
	eps := []presencev1alpha1.GatewayEndpoint{{
		Scope: presencev1alpha1.EndpointScopeInCluster, Via: presencev1alpha1.EndpointViaService, URL: Endpoint(gw),
	}}
	if in := gw.Spec.Ingress; in != nil {
		scheme := "ws"
		if in.TLSSecretName != "" {
			scheme = "wss"
		}
		eps = append(eps, presencev1alpha1.GatewayEndpoint{
			Scope: presencev1alpha1.EndpointScopeExternal, Via: presencev1alpha1.EndpointViaIngress,
			URL: scheme + "://" + in.Host + routePath(in.Path),
		})
	}
	if hr := gw.Spec.HTTPRoute; hr != nil {
		scheme := "ws"
		if routeTLS {
			scheme = "wss"
		}
		for _, h := range hr.Hostnames {
			eps = append(eps, presencev1alpha1.GatewayEndpoint{
				Scope: presencev1alpha1.EndpointScopeExternal, Via: presencev1alpha1.EndpointViaHTTPRoute,
				URL: scheme + "://" + h + routePath(hr.Path),
			})
		}
	}
	if svc != nil && svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, lb := range svc.Status.LoadBalancer.Ingress {
			host := lb.Hostname
			if host == "" {
				host = lb.IP
			}
			if host == "" {
				continue
			}
			eps = append(eps, presencev1alpha1.GatewayEndpoint{
				Scope: presencev1alpha1.EndpointScopeExternal, Via: presencev1alpha1.EndpointViaLoadBalancer,
				URL: "ws://" + net.JoinHostPort(host, strconv.Itoa(int(servicePort(gw)))) + "/",
			})
		}
	}
	return eps
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

// PodMonitor renders the PodMonitor of spec.monitoring.podMonitor, nil
// without it: every gateway pod's metrics port, in the gateway's namespace.
func PodMonitor(gw *presencev1alpha1.PresenceGateway) *monitoringv1.PodMonitor {
	if gw.Spec.Monitoring == nil || gw.Spec.Monitoring.PodMonitor == nil {
		return nil
	}
	pm := gw.Spec.Monitoring.PodMonitor
	labels := maps.Clone(pm.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, ObjectLabels(gw)) // ours win: the operator's cache selects by them
	return &monitoringv1.PodMonitor{
		ObjectMeta: metav1.ObjectMeta{Name: gw.Name, Namespace: gw.Namespace, Labels: labels},
		Spec: monitoringv1.PodMonitorSpec{
			Selector: metav1.LabelSelector{MatchLabels: SelectorLabels(gw)},
			PodMetricsEndpoints: []monitoringv1.PodMetricsEndpoint{{
				Port:     ptr.To("metrics"),
				Path:     metricsPath,
				Interval: monitoringv1.Duration(pm.Interval),
			}},
		},
	}
}
