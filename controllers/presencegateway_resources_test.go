package controllers

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// Unit tests of the pure builders: no cluster involved.

func testGateway(mutate func(*presencev1alpha1.PresenceGateway)) *presencev1alpha1.PresenceGateway {
	gw := &presencev1alpha1.PresenceGateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "chat", Name: "chat"},
		Spec:       presencev1alpha1.PresenceGatewaySpec{Redis: presencev1alpha1.RedisSpec{ClusterRef: presencev1alpha1.LocalRef{Name: "presence-redis"}}},
	}
	if mutate != nil {
		mutate(gw)
	}
	return gw
}

func testDeps(mutate func(*gatewayDeps)) gatewayDeps {
	deps := gatewayDeps{redis: &presencev1alpha1.RedisCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "chat", Name: "presence-redis"},
		Spec: presencev1alpha1.RedisClusterSpec{External: &presencev1alpha1.ExternalRedisCluster{
			Nodes: []string{"redis-0.redis:6379", "redis-1.redis:6379"}}},
	}}
	if mutate != nil {
		mutate(&deps)
	}
	return deps
}

func withAuth(d *gatewayDeps) {
	d.redis.Spec.Auth = &presencev1alpha1.RedisAuth{SecretRef: presencev1alpha1.LocalRef{Name: "redis-auth"}}
	d.redisAuth = &corev1.Secret{Data: map[string][]byte{"username": []byte("u"), "password": []byte("pw-1")}}
}

func envMap(env []corev1.EnvVar) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range env {
		m[e.Name] = e
	}
	return m
}

func TestDesiredDeploymentEnv(t *testing.T) {
	tests := []struct {
		name   string
		gw     func(*presencev1alpha1.PresenceGateway)
		deps   func(*gatewayDeps)
		want   map[string]string // name -> value ("" = set through a reference)
		absent []string
	}{
		{
			name: "defaults",
			want: map[string]string{"WS_PORT": "8080", "METRICS_PORT": "9090", "REDIS_NODES": "redis-0.redis:6379,redis-1.redis:6379",
				"PRESENCE_TTL": "1m0s", "HEARTBEAT_INTERVAL": "20s", "WS_MAX_PAYLOAD_BYTES": "4096", "SHUTDOWN_GRACE": "25s"},
			absent: []string{"MAX_CONNECTIONS", "ALLOWED_ORIGINS", "REDIS_USERNAME", "REDIS_PASSWORD_FILE", "REDIS_PASSWORD", "AUTH_JWT_SECRET"},
		},
		{
			name: "every spec field",
			gw: func(gw *presencev1alpha1.PresenceGateway) {
				gw.Spec.Presence = presencev1alpha1.PresenceSpec{TTL: &metav1.Duration{Duration: 90 * time.Second}, HeartbeatInterval: &metav1.Duration{Duration: 30 * time.Second}}
				gw.Spec.Websocket = presencev1alpha1.WebsocketSpec{Port: 9000, MaxPayloadBytes: 8192, MaxConnectionsPerPod: ptr.To[int32](10000),
					AllowedOrigins: []string{"https://a.example", "https://b.example"}}
				gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt", Key: "hs256"}}
				gw.Spec.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}}
			},
			deps: withAuth,
			want: map[string]string{"WS_PORT": "9000", "PRESENCE_TTL": "1m30s", "HEARTBEAT_INTERVAL": "30s", "WS_MAX_PAYLOAD_BYTES": "8192",
				"MAX_CONNECTIONS": "10000", "ALLOWED_ORIGINS": "https://a.example,https://b.example", "LOG_LEVEL": "debug",
				"REDIS_PASSWORD_FILE": "/etc/presence/redis/password", "REDIS_USERNAME": "", "AUTH_JWT_SECRET": ""},
			absent: []string{"REDIS_PASSWORD"},
		},
		{
			name: "nodes from status when the spec has none",
			deps: func(d *gatewayDeps) {
				d.redis.Spec.External = nil
				d.redis.Status.Nodes = []string{"10.0.0.1:6379"}
			},
			want: map[string]string{"REDIS_NODES": "10.0.0.1:6379"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			dep := desiredDeployment(testGateway(tt.gw), testDeps(tt.deps), "img:1")
			env := envMap(dep.Spec.Template.Spec.Containers[0].Env)
			for k, v := range tt.want {
				g.Expect(env).To(HaveKey(k))
				g.Expect(env[k].Value).To(Equal(v), k)
				if v == "" {
					g.Expect(env[k].ValueFrom).NotTo(BeNil(), "%s must come from a Secret reference", k)
				}
			}
			for _, k := range tt.absent {
				g.Expect(env).NotTo(HaveKey(k))
			}
		})
	}
}

func TestDesiredDeploymentNoSecretInEnv(t *testing.T) {
	g := NewWithT(t)
	deps := testDeps(withAuth)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt"}}
	})
	deps.jwt = &corev1.Secret{Data: map[string][]byte{"secret": []byte("jwt-secret-value")}}
	dep := desiredDeployment(gw, deps, "img:1")
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		g.Expect(e.Value).NotTo(Or(ContainSubstring("pw-1"), ContainSubstring("jwt-secret-value")), e.Name)
	}
	env := envMap(dep.Spec.Template.Spec.Containers[0].Env)
	g.Expect(env["AUTH_JWT_SECRET"].ValueFrom.SecretKeyRef).To(HaveField("Key", "secret"))
	g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.Secret.SecretName", "redis-auth")))
	g.Expect(dep.Spec.Template.Spec.Containers[0].VolumeMounts).To(ContainElement(And(
		HaveField("MountPath", "/etc/presence/redis"), HaveField("ReadOnly", true))))
}

func TestDesiredDeploymentPodShape(t *testing.T) {
	g := NewWithT(t)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.PodLabels = map[string]string{"team": "chat", "app.kubernetes.io/name": "hijack"}
		gw.Spec.PodAnnotations = map[string]string{"sidecar": "no"}
		gw.Spec.NodeSelector = map[string]string{"pool": "ws"}
		gw.Spec.PriorityClassName = "high"
		gw.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		gw.Spec.Tolerations = []corev1.Toleration{{Key: "ws", Operator: corev1.TolerationOpExists}}
	})
	dep := desiredDeployment(gw, testDeps(nil), "img:1")
	pod := dep.Spec.Template
	c := pod.Spec.Containers[0]

	g.Expect(c.Image).To(Equal("img:1"))
	g.Expect(pod.Labels).To(HaveKeyWithValue("team", "chat"))
	g.Expect(pod.Labels).To(HaveKeyWithValue("app.kubernetes.io/name", "presence-gateway"), "selector labels cannot be overridden")
	g.Expect(dep.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app.kubernetes.io/name": "presence-gateway", "app.kubernetes.io/instance": "chat"}))
	g.Expect(pod.Annotations).To(HaveKeyWithValue("sidecar", "no"))
	g.Expect(pod.Annotations).To(HaveKeyWithValue("prometheus.io/scrape", "true"))
	g.Expect(pod.Annotations).To(HaveKeyWithValue("prometheus.io/port", "9090"))
	g.Expect(pod.Annotations).To(HaveKeyWithValue("prometheus.io/path", "/metrics"))
	g.Expect(pod.Spec.NodeSelector).To(HaveKeyWithValue("pool", "ws"))
	g.Expect(pod.Spec.PriorityClassName).To(Equal("high"))
	g.Expect(pod.Spec.ImagePullSecrets).To(HaveLen(1))
	g.Expect(pod.Spec.Tolerations).To(HaveLen(1))

	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.Ports).To(ContainElement(And(HaveField("Name", "metrics"), HaveField("ContainerPort", int32(9090)))))
	g.Expect(*c.SecurityContext.RunAsNonRoot).To(BeTrue())
	g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
	// The kubelet must not SIGKILL a gateway that is still draining.
	g.Expect(*pod.Spec.TerminationGracePeriodSeconds).To(BeNumerically(">", int64(shutdownGrace/time.Second)))
	g.Expect(dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue()).To(Equal(0))
	g.Expect(*dep.Spec.Replicas).To(Equal(int32(2)))
}

func TestConfigHash(t *testing.T) {
	g := NewWithT(t)
	base := configHash(testDeps(withAuth))
	g.Expect(configHash(testDeps(withAuth))).To(Equal(base), "stable for the same inputs")

	otherNodes := testDeps(withAuth)
	otherNodes.redis.Spec.External.Nodes = []string{"redis-9.redis:6379"}
	g.Expect(configHash(otherNodes)).NotTo(Equal(base), "REDIS_NODES change")

	otherPassword := testDeps(withAuth)
	otherPassword.redisAuth.Data["password"] = []byte("pw-2")
	g.Expect(configHash(otherPassword)).NotTo(Equal(base), "password change")

	// Redis status changes (health) do not roll pods.
	statusOnly := testDeps(withAuth)
	statusOnly.redis.Status.ClusterState = "fail"
	g.Expect(configHash(statusOnly)).To(Equal(base))
	g.Expect(base).NotTo(ContainSubstring("pw-1"))
}

func TestDesiredService(t *testing.T) {
	g := NewWithT(t)
	svc := desiredService(testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Service = presencev1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Port: 443, Annotations: map[string]string{"lb": "internal"}}
	}))
	g.Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeLoadBalancer))
	g.Expect(svc.Annotations).To(HaveKeyWithValue("lb", "internal"))
	g.Expect(svc.Spec.Ports[0]).To(And(HaveField("Port", int32(443)), HaveField("TargetPort", intstr.FromString("ws"))))
	g.Expect(endpoint(testGateway(nil))).To(Equal("ws://chat.chat.svc:80"))
}

func TestDesiredHPA(t *testing.T) {
	tests := []struct {
		name        string
		autoscaling *presencev1alpha1.AutoscalingSpec
		wantNil     bool
		wantMin     int32
		wantMetrics []autoscalingv2.MetricSourceType
	}{
		{name: "off", wantNil: true},
		{name: "default CPU target", autoscaling: &presencev1alpha1.AutoscalingSpec{MaxReplicas: 5}, wantMin: 2,
			wantMetrics: []autoscalingv2.MetricSourceType{autoscalingv2.ResourceMetricSourceType}},
		{name: "CPU and connections", autoscaling: &presencev1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](3), MaxReplicas: 20,
			TargetCPUUtilizationPercentage: ptr.To[int32](70), TargetConnectionsPerPod: ptr.To[int32](5000)}, wantMin: 3,
			wantMetrics: []autoscalingv2.MetricSourceType{autoscalingv2.ResourceMetricSourceType, autoscalingv2.PodsMetricSourceType}},
		{name: "connections only", autoscaling: &presencev1alpha1.AutoscalingSpec{MaxReplicas: 20, TargetConnectionsPerPod: ptr.To[int32](100)}, wantMin: 2,
			wantMetrics: []autoscalingv2.MetricSourceType{autoscalingv2.PodsMetricSourceType}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			hpa := desiredHPA(testGateway(func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Autoscaling = tt.autoscaling }))
			if tt.wantNil {
				g.Expect(hpa).To(BeNil())
				return
			}
			g.Expect(*hpa.Spec.MinReplicas).To(Equal(tt.wantMin))
			g.Expect(hpa.Spec.ScaleTargetRef).To(Equal(autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "chat"}))
			var types []autoscalingv2.MetricSourceType
			for _, m := range hpa.Spec.Metrics {
				types = append(types, m.Type)
				if m.Type == autoscalingv2.PodsMetricSourceType {
					g.Expect(m.Pods.Metric.Name).To(Equal("presence_gateway_connections"))
					g.Expect(m.Pods.Target.AverageValue.Value()).To(Equal(int64(*tt.autoscaling.TargetConnectionsPerPod)))
				}
			}
			g.Expect(types).To(Equal(tt.wantMetrics))
		})
	}
}

func TestDesiredPDB(t *testing.T) {
	g := NewWithT(t)
	g.Expect(desiredPDB(testGateway(func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Replicas = ptr.To[int32](1) }))).To(BeNil(), "one pod: no PDB")
	g.Expect(desiredPDB(testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Replicas = ptr.To[int32](1)
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](1), MaxReplicas: 3}
	}))).NotTo(BeNil(), "autoscaling can reach 3 pods")
	pdb := desiredPDB(testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.PodDisruptionBudget.MaxUnavailable = ptr.To(intstr.FromString("25%"))
	}))
	g.Expect(pdb.Spec.MaxUnavailable.String()).To(Equal("25%"))
	g.Expect(desiredPDB(testGateway(nil)).Spec.MaxUnavailable.IntValue()).To(Equal(1))
}

func TestMergeDeploymentKeepsHPAReplicasAndDefaults(t *testing.T) {
	g := NewWithT(t)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 10}
	})
	desired := desiredDeployment(gw, testDeps(nil), "img:1")
	live := desired.DeepCopy()
	live.Spec.Replicas = ptr.To[int32](7)
	live.Spec.Template.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent // an API server default
	live.Spec.Template.Annotations[restartedAtAnnotation] = "2026-01-01T00:00:00Z"
	before := live.DeepCopy()

	mergeDeployment(true)(live, desired)
	g.Expect(live).To(Equal(before), "defaults are not drift; the HPA's replicas stay")

	live.Spec.Template.Spec.Containers[0].Image = "other:2"
	mergeDeployment(true)(live, desired)
	g.Expect(live.Spec.Template.Spec.Containers[0].Image).To(Equal("img:1"))
	g.Expect(*live.Spec.Replicas).To(Equal(int32(7)))
	g.Expect(live.Spec.Template.Annotations).To(HaveKey(restartedAtAnnotation), "kubectl rollout restart survives drift correction")

	mergeDeployment(false)(live, desired)
	g.Expect(*live.Spec.Replicas).To(Equal(int32(2)), "without autoscaling spec.replicas wins")
}

func TestMergeDeploymentRemovesAddedListItems(t *testing.T) {
	tests := []struct {
		name  string
		drift func(spec *corev1.PodSpec)
	}{
		{"env var added", func(s *corev1.PodSpec) {
			s.Containers[0].Env = append(s.Containers[0].Env, corev1.EnvVar{Name: "DEBUG", Value: "1"})
		}},
		{"envFrom added", func(s *corev1.PodSpec) {
			s.Containers[0].EnvFrom = append(s.Containers[0].EnvFrom, corev1.EnvFromSource{Prefix: "X_"})
		}},
		{"sidecar added", func(s *corev1.PodSpec) {
			s.Containers = append(s.Containers, corev1.Container{Name: "sidecar", Image: "busybox"})
		}},
		{"init container added", func(s *corev1.PodSpec) {
			s.InitContainers = append(s.InitContainers, corev1.Container{Name: "init", Image: "busybox"})
		}},
		{"volume and mount added", func(s *corev1.PodSpec) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "extra"})
			s.Containers[0].VolumeMounts = append(s.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "extra", MountPath: "/x"})
		}},
		{"arg added", func(s *corev1.PodSpec) { s.Containers[0].Args = append(s.Containers[0].Args, "--debug") }},
		{"port added", func(s *corev1.PodSpec) {
			s.Containers[0].Ports = append(s.Containers[0].Ports, corev1.ContainerPort{Name: "debug", ContainerPort: 6060})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			desired := desiredDeployment(testGateway(nil), testDeps(nil), "img:1")
			live := desired.DeepCopy()
			tt.drift(&live.Spec.Template.Spec)
			mergeDeployment(false)(live, desired)
			g.Expect(live.Spec.Template).To(Equal(desired.Spec.Template), "the operator owns the whole pod template")
		})
	}
}

func TestMergeServiceKeepsAllocatedFields(t *testing.T) {
	g := NewWithT(t)
	desired := desiredService(testGateway(func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Service.Type = corev1.ServiceTypeNodePort }))
	live := desired.DeepCopy()
	live.Spec.ClusterIP = "10.0.0.10"
	live.Spec.Ports[0].NodePort = 30080
	live.Spec.Ports[1].NodePort = 30090
	before := live.DeepCopy()
	mergeService(live, desired)
	g.Expect(live).To(Equal(before))

	live.Spec.Ports[0].Port = 1234
	mergeService(live, desired)
	g.Expect(live.Spec.Ports[0].Port).To(Equal(int32(80)))
	g.Expect(live.Spec.Ports[0].NodePort).To(Equal(int32(30080)))
	g.Expect(strings.Join([]string{live.Spec.ClusterIP}, "")).To(Equal("10.0.0.10"))
}
