package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

func gateway(name string, mutate func(*presencev1alpha1.PresenceGatewaySpec)) *presencev1alpha1.PresenceGateway {
	gw := &presencev1alpha1.PresenceGateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       presencev1alpha1.PresenceGatewaySpec{Redis: presencev1alpha1.RedisSpec{ClusterRef: presencev1alpha1.LocalRef{Name: "presence-redis"}}},
	}
	if mutate != nil {
		mutate(&gw.Spec)
	}
	return gw
}

func TestPresenceGatewayDefaults(t *testing.T) {
	requireAPIServer(t)
	g := NewWithT(t)
	ctx := context.Background()
	gw := gateway("defaults", nil)
	g.Expect(k8sClient.Create(ctx, gw)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, gw) })

	s := gw.Spec
	g.Expect(s.Replicas).To(HaveValue(Equal(int32(2))))
	g.Expect(s.Presence.TTL.Duration).To(Equal(60 * time.Second))
	g.Expect(s.Presence.HeartbeatInterval.Duration).To(Equal(20 * time.Second))
	g.Expect(s.Websocket.Port).To(Equal(int32(8080)))
	g.Expect(s.Websocket.MaxPayloadBytes).To(Equal(int32(4096)))
	g.Expect(s.Service.Type).To(Equal(corev1.ServiceTypeClusterIP))
	g.Expect(s.Service.Port).To(Equal(int32(80)))
	g.Expect(s.PodDisruptionBudget.MaxUnavailable).To(HaveValue(Equal(intstr.FromInt32(1))))
	g.Expect(s.Autoscaling).To(BeNil())

	withAS := gateway("autoscaling-defaults", func(s *presencev1alpha1.PresenceGatewaySpec) {
		s.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 5}
		s.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt"}}
	})
	g.Expect(k8sClient.Create(ctx, withAS)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, withAS) })
	g.Expect(withAS.Spec.Autoscaling.MinReplicas).To(HaveValue(Equal(int32(2))))
	g.Expect(withAS.Spec.Auth.JWTSecretRef.Key).To(Equal("secret"))
}

func TestPresenceGatewayValidation(t *testing.T) {
	requireAPIServer(t)
	tests := []struct {
		name    string
		mutate  func(*presencev1alpha1.PresenceGatewaySpec)
		wantErr []string // substrings of the API server's message; empty = accepted
	}{
		{"valid example", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Autoscaling = &presencev1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](2), MaxReplicas: 20, TargetCPUUtilizationPercentage: ptr.To[int32](70)}
			s.Presence = presencev1alpha1.PresenceSpec{TTL: &metav1.Duration{Duration: time.Minute}, HeartbeatInterval: &metav1.Duration{Duration: 20 * time.Second}}
			s.Service = presencev1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Port: 80}
		}, nil},
		{"maxReplicas below minReplicas", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Autoscaling = &presencev1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](5), MaxReplicas: 3}
		}, []string{"spec.autoscaling.maxReplicas must be greater than or equal to spec.autoscaling.minReplicas"}},
		{"maxReplicas below the default minReplicas", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 1}
		}, []string{"spec.autoscaling.maxReplicas must be greater than or equal to spec.autoscaling.minReplicas"}},
		{"ttl not above twice the heartbeat", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Presence = presencev1alpha1.PresenceSpec{TTL: &metav1.Duration{Duration: 40 * time.Second}, HeartbeatInterval: &metav1.Duration{Duration: 20 * time.Second}}
		}, []string{"spec.presence.ttl must be more than twice spec.presence.heartbeatInterval"}},
		{"ttl alone against the default heartbeat", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Presence = presencev1alpha1.PresenceSpec{TTL: &metav1.Duration{Duration: 30 * time.Second}}
		}, []string{"spec.presence.ttl must be more than twice spec.presence.heartbeatInterval"}},
		{"heartbeat too short", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Presence = presencev1alpha1.PresenceSpec{HeartbeatInterval: &metav1.Duration{Duration: 10 * time.Millisecond}}
		}, []string{"spec.presence.heartbeatInterval must be at least 1s"}},
		{"websocket port out of range", func(s *presencev1alpha1.PresenceGatewaySpec) { s.Websocket.Port = 70000 },
			[]string{"spec.websocket.port", "65535"}},
		{"websocket port on the metrics port", func(s *presencev1alpha1.PresenceGatewaySpec) { s.Websocket.Port = 9090 },
			[]string{"spec.websocket.port must not be 9090"}},
		{"service port out of range", func(s *presencev1alpha1.PresenceGatewaySpec) { s.Service.Port = 0 - 1 },
			[]string{"spec.service.port"}},
		{"unknown service type", func(s *presencev1alpha1.PresenceGatewaySpec) { s.Service.Type = "ExternalName" },
			[]string{"spec.service.type", "Unsupported value"}},
		{"env overriding REDIS_NODES", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}, {Name: "REDIS_NODES", Value: "x:1"}}
		}, []string{"spec.env must not set a variable the operator derives from the spec"}},
		{"origin with a comma", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Websocket.AllowedOrigins = []string{"https://a.example,https://b.example"}
		}, []string{"spec.websocket.allowedOrigins[0]"}},
		{"payload above the gateway's 1 MiB", func(s *presencev1alpha1.PresenceGatewaySpec) { s.Websocket.MaxPayloadBytes = 1<<20 + 1 },
			[]string{"spec.websocket.maxPayloadBytes", "1048576"}},
		{"payload at the gateway's 1 MiB", func(s *presencev1alpha1.PresenceGatewaySpec) { s.Websocket.MaxPayloadBytes = 1 << 20 }, nil},
		{"origin without a scheme", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Websocket.AllowedOrigins = []string{"https://a.example", "app.example.com"}
		}, []string{"spec.websocket.allowedOrigins entries must be scheme://host"}},
		{"origin with a path", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Websocket.AllowedOrigins = []string{"https://a.example/app"}
		}, []string{"spec.websocket.allowedOrigins entries must be scheme://host"}},
		{"origins with schemes and ports", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Websocket.AllowedOrigins = []string{"https://a.example", "http://localhost:3000", "https://b.example/"}
		}, nil},
		{"bad maxUnavailable", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.PodDisruptionBudget.MaxUnavailable = ptr.To(intstr.FromString("half"))
		}, []string{"spec.podDisruptionBudget.maxUnavailable must be a non-negative number or a percentage"}},
		{"no cluster name", func(s *presencev1alpha1.PresenceGatewaySpec) { s.Redis.ClusterRef.Name = "" },
			[]string{"spec.redis.clusterRef.name"}},
		{"requireWatchClaim without a JWT key source", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Auth = &presencev1alpha1.AuthSpec{RequireWatchClaim: true}
		}, []string{"spec.auth.requireWatchClaim needs a JWT key source (jwtSecretRef, jwtPublicKeyRef or jwksURL)"}},
		{"two JWT key sources", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt"}, JWKSURL: "https://idp.example.com/jwks.json"}
		}, []string{"spec.auth: give one JWT key source"}},
		{"audience without a key source", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Auth = &presencev1alpha1.AuthSpec{Audience: "chat"}
		}, []string{"spec.auth.audience and spec.auth.issuer need a JWT key source"}},
		{"JWKS URL without a scheme", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Auth = &presencev1alpha1.AuthSpec{JWKSURL: "idp.example.com/jwks.json"}
		}, []string{"spec.auth.jwksURL must be an absolute http(s) URL"}},
		{"public key from both a Secret and a ConfigMap", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Auth = &presencev1alpha1.AuthSpec{JWTPublicKeyRef: &presencev1alpha1.KeySourceRef{
				SecretKeyRef:    &presencev1alpha1.ObjectKeyRef{Name: "k", Key: "pem"},
				ConfigMapKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "k", Key: "pem"}}}
		}, []string{"give exactly one of secretKeyRef and configMapKeyRef"}},
		{"public key without a key name", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Auth = &presencev1alpha1.AuthSpec{JWTPublicKeyRef: &presencev1alpha1.KeySourceRef{
				ConfigMapKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "k"}}}
		}, []string{"spec.auth.jwtPublicKeyRef.configMapKeyRef.key"}},
		{"public key, audience, issuer and requireWatchClaim", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Auth = &presencev1alpha1.AuthSpec{JWTPublicKeyRef: &presencev1alpha1.KeySourceRef{
				SecretKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "k", Key: "pem"}},
				Audience: "chat", Issuer: "https://idp.example.com/", RequireWatchClaim: true}
		}, nil},
		{"loadBalancerClass on a ClusterIP Service", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Service.LoadBalancerClass = ptr.To("example.com/lb")
		}, []string{"spec.service.loadBalancerClass needs spec.service.type LoadBalancer"}},
		{"source ranges on a ClusterIP Service", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Service.LoadBalancerSourceRanges = []string{"10.0.0.0/8"}
		}, []string{"spec.service.loadBalancerSourceRanges needs spec.service.type LoadBalancer"}},
		{"a source range that is not a CIDR", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Service.Type = corev1.ServiceTypeLoadBalancer
			s.Service.LoadBalancerSourceRanges = []string{"10.0.0.1"}
		}, []string{"spec.service.loadBalancerSourceRanges entries must be CIDRs"}},
		{"externalTrafficPolicy on a ClusterIP Service", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Service.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}, []string{"spec.service.externalTrafficPolicy needs spec.service.type NodePort or LoadBalancer"}},
		{"every Service option", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Service = presencev1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To("example.com/lb"),
				LoadBalancerSourceRanges: []string{"203.0.113.0/24", "2001:db8::/32"}, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
				Labels: map[string]string{"team": "chat"}}
		}, nil},
		{"an Ingress without a host", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Ingress = &presencev1alpha1.IngressSpec{}
		}, []string{"spec.ingress.host"}},
		{"an Ingress host that is not a DNS name", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Ingress = &presencev1alpha1.IngressSpec{Host: "https://presence.example.com"}
		}, []string{"spec.ingress.host"}},
		{"an Ingress path without a leading slash", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Ingress = &presencev1alpha1.IngressSpec{Host: "presence.example.com", Path: "ws"}
		}, []string{"spec.ingress.path"}},
		{"a PodMonitor interval that is not a duration", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Monitoring = &presencev1alpha1.MonitoringSpec{PodMonitor: &presencev1alpha1.PodMonitorSpec{Interval: "15 seconds"}}
		}, []string{"spec.monitoring.podMonitor.interval"}},
		{"KEDA without a target", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 4, KEDA: &presencev1alpha1.KEDASpec{}}
		}, []string{"spec.autoscaling.keda needs spec.autoscaling.targetConnectionsPerPod"}},
		{"KEDA on connections", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 4, TargetConnectionsPerPod: ptr.To[int32](1000),
				KEDA: &presencev1alpha1.KEDASpec{PollingInterval: ptr.To[int32](10)}}
		}, nil},
		{"a sidecar named gateway", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Template = &presencev1alpha1.PodTemplate{Spec: presencev1alpha1.PodTemplateSpec{Containers: []corev1.Container{{Name: "gateway", Image: "x"}}}}
		}, []string{"spec.template.spec.containers: the name gateway is the operator's container"}},
		{"a grace period shorter than the drain", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Template = &presencev1alpha1.PodTemplate{Spec: presencev1alpha1.PodTemplateSpec{TerminationGracePeriodSeconds: ptr.To[int64](10)}}
		}, []string{"spec.template.spec.terminationGracePeriodSeconds"}},
		{"a template with a sidecar and a volume", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Template = &presencev1alpha1.PodTemplate{Spec: presencev1alpha1.PodTemplateSpec{
				Containers: []corev1.Container{{Name: "proxy", Image: "envoy"}},
				Volumes:    []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			}}
		}, nil},
		{"a PodMonitor", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Monitoring = &presencev1alpha1.MonitoringSpec{PodMonitor: &presencev1alpha1.PodMonitorSpec{Interval: "1m30s", Labels: map[string]string{"release": "prom"}}}
		}, nil},
		{"both an Ingress and an HTTPRoute", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Ingress = &presencev1alpha1.IngressSpec{Host: "presence.example.com"}
			s.HTTPRoute = &presencev1alpha1.HTTPRouteSpec{ParentRefs: []presencev1alpha1.RouteParentRef{{Name: "edge"}}}
		}, []string{"give one of spec.ingress and spec.httpRoute"}},
		{"an HTTPRoute without parents", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.HTTPRoute = &presencev1alpha1.HTTPRouteSpec{}
		}, []string{"spec.httpRoute.parentRefs"}},
		{"an Ingress", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Ingress = &presencev1alpha1.IngressSpec{Host: "presence.example.com", ClassName: ptr.To("nginx"), TLSSecretName: "tls"}
		}, nil},
		{"JWKS URL", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Auth = &presencev1alpha1.AuthSpec{JWKSURL: "https://idp.example.com/.well-known/jwks.json", Issuer: "https://idp.example.com/"}
		}, nil},
		{"requireWatchClaim with a JWT secret", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt"}, RequireWatchClaim: true}
		}, nil},
		{"env setting AUTH_REQUIRE_WATCH_CLAIM", func(s *presencev1alpha1.PresenceGatewaySpec) {
			s.Env = []corev1.EnvVar{{Name: "AUTH_REQUIRE_WATCH_CLAIM", Value: "true"}}
		}, []string{"spec.env must not set a variable the operator derives from the spec"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			gw := gateway(fmt.Sprintf("v%d", i), tt.mutate)
			err := k8sClient.Create(ctx, gw)
			if len(tt.wantErr) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				_ = k8sClient.Delete(ctx, gw)
				return
			}
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid spec")
			for _, want := range tt.wantErr {
				g.Expect(err.Error()).To(ContainSubstring(want))
			}
		})
	}
}

func TestPresenceGatewayBadDurationString(t *testing.T) {
	requireAPIServer(t)
	g := NewWithT(t)
	// A typed client cannot send a bad duration: send raw JSON.
	u := &unstructuredGateway{name: "bad-ttl", ttl: "one minute"}
	err := k8sClient.Create(context.Background(), u.object())
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.presence.ttl"))
}

func TestRedisClusterValidation(t *testing.T) {
	requireAPIServer(t)
	tests := []struct {
		name    string
		spec    presencev1alpha1.RedisClusterSpec
		wantErr []string
	}{
		{"valid", presencev1alpha1.RedisClusterSpec{
			External: &presencev1alpha1.ExternalRedisCluster{Nodes: []string{"redis-0.redis:6379", "10.0.0.1:7000", "[::1]:7001"}},
			Auth:     &presencev1alpha1.RedisAuth{SecretRef: presencev1alpha1.LocalRef{Name: "auth"}},
		}, nil},
		{"no source", presencev1alpha1.RedisClusterSpec{}, []string{"give exactly one source of the cluster's nodes: spec.external.nodes (host:port seeds) or spec.serviceRef"}},
		{"two sources", presencev1alpha1.RedisClusterSpec{
			External:   &presencev1alpha1.ExternalRedisCluster{Nodes: []string{"redis-0.redis:6379"}},
			ServiceRef: &presencev1alpha1.RedisServiceRef{Name: "redis"},
		}, []string{"give exactly one source of the cluster's nodes"}},
		{"a Service", presencev1alpha1.RedisClusterSpec{ServiceRef: &presencev1alpha1.RedisServiceRef{Name: "redis-cluster-headless", Port: 6379}}, nil},
		{"a Service name that is not a label", presencev1alpha1.RedisClusterSpec{ServiceRef: &presencev1alpha1.RedisServiceRef{Name: "Redis.Cluster"}},
			[]string{"spec.serviceRef.name"}},
		{"a Service port out of range", presencev1alpha1.RedisClusterSpec{ServiceRef: &presencev1alpha1.RedisServiceRef{Name: "redis", Port: 70000}},
			[]string{"spec.serviceRef.port"}},
		{"no nodes", presencev1alpha1.RedisClusterSpec{External: &presencev1alpha1.ExternalRedisCluster{Nodes: []string{}}},
			[]string{"spec.external.nodes"}},
		{"node without port", presencev1alpha1.RedisClusterSpec{External: &presencev1alpha1.ExternalRedisCluster{Nodes: []string{"redis-0"}}},
			[]string{"spec.external.nodes[0]"}},
		{"port out of range", presencev1alpha1.RedisClusterSpec{External: &presencev1alpha1.ExternalRedisCluster{Nodes: []string{"redis-0:6379", "redis-1:70000"}}},
			[]string{"spec.external.nodes: every entry must be host:port with a port from 1 to 65535"}},
		{"port zero", presencev1alpha1.RedisClusterSpec{External: &presencev1alpha1.ExternalRedisCluster{Nodes: []string{"redis-0:0"}}},
			[]string{"spec.external.nodes: every entry must be host:port with a port from 1 to 65535"}},
		{"tls with a CA from a Secret, a server name and an ACL user", withTLS(&presencev1alpha1.RedisTLS{
			Enabled: true, ServerName: "redis.example.internal",
			CARef: &presencev1alpha1.KeySourceRef{SecretKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "redis-tls", Key: "ca.crt"}},
		}, "presence"), nil},
		{"tls with a CA from a ConfigMap", withTLS(&presencev1alpha1.RedisTLS{
			Enabled: true, CARef: &presencev1alpha1.KeySourceRef{ConfigMapKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "bundle", Key: "ca.pem"}},
		}, ""), nil},
		{"tls skipping verification", withTLS(&presencev1alpha1.RedisTLS{Enabled: true, InsecureSkipVerify: true}, ""), nil},
		{"tls CA from both a Secret and a ConfigMap", withTLS(&presencev1alpha1.RedisTLS{Enabled: true, CARef: &presencev1alpha1.KeySourceRef{
			SecretKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "a", Key: "ca.crt"}, ConfigMapKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "b", Key: "ca.crt"},
		}}, ""), []string{"spec.tls.caRef", "give exactly one of secretKeyRef and configMapKeyRef"}},
		{"tls CA from neither", withTLS(&presencev1alpha1.RedisTLS{Enabled: true, CARef: &presencev1alpha1.KeySourceRef{}}, ""),
			[]string{"spec.tls.caRef", "give exactly one of secretKeyRef and configMapKeyRef"}},
		{"tls CA without a key", withTLS(&presencev1alpha1.RedisTLS{Enabled: true, CARef: &presencev1alpha1.KeySourceRef{
			SecretKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "a"}}}, ""), []string{"spec.tls.caRef.secretKeyRef.key"}},
		{"tls settings while disabled", withTLS(&presencev1alpha1.RedisTLS{ServerName: "redis.example.internal"}, ""),
			[]string{"spec.tls: caRef, serverName and insecureSkipVerify need enabled: true"}},
		{"tls skipping verification with a CA", withTLS(&presencev1alpha1.RedisTLS{Enabled: true, InsecureSkipVerify: true,
			CARef: &presencev1alpha1.KeySourceRef{SecretKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "a", Key: "ca.crt"}}}, ""),
			[]string{"spec.tls: insecureSkipVerify verifies no certificate"}},
		{"tls server name with a port", withTLS(&presencev1alpha1.RedisTLS{Enabled: true, ServerName: "redis:6379"}, ""),
			[]string{"spec.tls.serverName"}},
		{"ACL user with a space", withTLS(nil, "two words"), []string{"spec.auth.username"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			rc := &presencev1alpha1.RedisCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "rc" + string(rune('a'+i))}, Spec: tt.spec}
			err := k8sClient.Create(ctx, rc)
			if len(tt.wantErr) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				_ = k8sClient.Delete(ctx, rc)
				return
			}
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid spec")
			for _, want := range tt.wantErr {
				g.Expect(err.Error()).To(ContainSubstring(want))
			}
		})
	}
}

// withTLS is a valid RedisCluster spec with spec.tls and, unless empty,
// spec.auth.username.
func withTLS(tls *presencev1alpha1.RedisTLS, username string) presencev1alpha1.RedisClusterSpec {
	s := presencev1alpha1.RedisClusterSpec{
		External: &presencev1alpha1.ExternalRedisCluster{Nodes: []string{"redis-0.redis:6379"}},
		TLS:      tls,
	}
	if username != "" {
		s.Auth = &presencev1alpha1.RedisAuth{SecretRef: presencev1alpha1.LocalRef{Name: "auth"}, Username: username}
	}
	return s
}

func TestScaleSubresourceSchema(t *testing.T) {
	requireAPIServer(t)
	g := NewWithT(t)
	ctx := context.Background()
	gw := gateway("scale", nil)
	g.Expect(k8sClient.Create(ctx, gw)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, gw) })

	scale := &autoscalingv1.Scale{}
	g.Expect(k8sClient.SubResource("scale").Get(ctx, gw, scale)).To(Succeed())
	g.Expect(scale.Spec.Replicas).To(Equal(int32(2)))
	// A 409 Conflict (the object moved between Get and Update) is retried
	// on a fresh read, as kubectl scale does.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.SubResource("scale").Get(ctx, gw, scale); err != nil {
			return err
		}
		scale.Spec.Replicas = 4
		return k8sClient.SubResource("scale").Update(ctx, gw, client.WithSubResourceBody(scale))
	})).To(Succeed())
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(gw), gw)).To(Succeed())
	g.Expect(gw.Spec.Replicas).To(HaveValue(Equal(int32(4))))
}

// TestPresenceGatewayNameLimits: the name becomes the Service's and the
// <name>-metrics Service's (DNS-1035 labels of at most 63 characters) and a
// label value, so a name those cannot carry is refused with a message, not
// left to fail later in the reconciler.
func TestPresenceGatewayNameLimits(t *testing.T) {
	requireAPIServer(t)
	longest := "g" + strings.Repeat("a", 54)
	for name, ok := range map[string]bool{
		longest: true, longest + "a": false, "1chat": false, "chat.example": false, "chat-2": true,
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			gw := gateway(name, nil)
			err := k8sClient.Create(ctx, gw)
			if ok {
				g.Expect(err).NotTo(HaveOccurred())
				_ = k8sClient.Delete(ctx, gw)
				return
			}
			g.Expect(err).To(HaveOccurred(), "the API server accepted the name %q", name)
			g.Expect(err.Error()).To(ContainSubstring("metadata.name must be at most 55 characters"))
		})
	}
}

// TestShortNamesAndCategory: `kubectl get pgw`, `kubectl get prc` and
// `kubectl get presencekit` work, as discovery tells kubectl. prc is what
// tells our RedisCluster from the OpsTree operator's, which shares its
// plural.
func TestShortNamesAndCategory(t *testing.T) {
	requireAPIServer(t)
	g := NewWithT(t)
	dc, err := discovery.NewDiscoveryClientForConfig(restConfig)
	g.Expect(err).NotTo(HaveOccurred())
	list, err := dc.ServerResourcesForGroupVersion(presencev1alpha1.GroupVersion.String())
	g.Expect(err).NotTo(HaveOccurred())
	want := map[string]string{"presencegateways": "pgw", "redisclusters": "prc"}
	for _, r := range list.APIResources {
		short, ok := want[r.Name]
		if !ok {
			continue
		}
		g.Expect(r.ShortNames).To(ConsistOf(short), r.Name)
		g.Expect(r.Categories).To(ConsistOf("presencekit"), r.Name)
		delete(want, r.Name)
	}
	g.Expect(want).To(BeEmpty(), "resources missing from discovery")
}
