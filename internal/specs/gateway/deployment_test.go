package gateway

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwconfig "github.com/presencekit/presence-operator/gateway/config"
)

func TestDeploymentEnv(t *testing.T) {
	tests := []struct {
		name   string
		gw     func(*presencev1alpha1.PresenceGateway)
		deps   func(*Deps)
		want   map[string]string // name -> value ("" = set through a reference)
		absent []string
	}{
		{
			name: "defaults",
			want: map[string]string{"WS_PORT": "8080", "METRICS_PORT": "9090", "REDIS_NODES_FILE": "/etc/presence/redis-nodes/nodes",
				"PRESENCE_TTL": "1m0s", "HEARTBEAT_INTERVAL": "20s", "WS_MAX_PAYLOAD_BYTES": "4096", "SHUTDOWN_GRACE": "25s"},
			absent: []string{"MAX_CONNECTIONS", "ALLOWED_ORIGINS", "REDIS_NODES", "REDIS_USERNAME", "REDIS_USERNAME_FILE",
				"REDIS_PASSWORD_FILE", "REDIS_PASSWORD", "AUTH_JWT_SECRET", "AUTH_JWT_SECRET_FILE", "AUTH_REQUIRE_WATCH_CLAIM"},
		},
		{
			name: "every spec field",
			gw: func(gw *presencev1alpha1.PresenceGateway) {
				gw.Spec.Presence = presencev1alpha1.PresenceSpec{TTL: &metav1.Duration{Duration: 90 * time.Second}, HeartbeatInterval: &metav1.Duration{Duration: 30 * time.Second}}
				gw.Spec.Websocket = presencev1alpha1.WebsocketSpec{Port: 9000, MaxPayloadBytes: 8192, MaxConnectionsPerPod: ptr.To[int32](10000),
					AllowedOrigins: []string{"https://a.example", "https://b.example"}}
				gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt", Key: "hs256"}, RequireWatchClaim: true}
				gw.Spec.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}}
			},
			deps: withAuth,
			want: map[string]string{"WS_PORT": "9000", "PRESENCE_TTL": "1m30s", "HEARTBEAT_INTERVAL": "30s", "WS_MAX_PAYLOAD_BYTES": "8192",
				"MAX_CONNECTIONS": "10000", "ALLOWED_ORIGINS": "https://a.example,https://b.example", "LOG_LEVEL": "debug",
				"REDIS_PASSWORD_FILE": "/etc/presence/redis/password", "REDIS_USERNAME_FILE": "/etc/presence/redis/username",
				"AUTH_JWT_SECRET_FILE": "/etc/presence/jwt/secret", "AUTH_REQUIRE_WATCH_CLAIM": "true"},
			absent: []string{"REDIS_PASSWORD", "REDIS_USERNAME", "AUTH_JWT_SECRET", "AUTH_JWT_PUBLIC_KEY_FILE", "AUTH_JWT_JWKS_URL"},
		},
		{
			name: "public key, audience and issuer",
			gw: func(gw *presencev1alpha1.PresenceGateway) {
				gw.Spec.Auth = &presencev1alpha1.AuthSpec{
					JWTPublicKeyRef: &presencev1alpha1.KeySourceRef{ConfigMapKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "idp", Key: "rs256.pem"}},
					Audience:        "chat", Issuer: "https://idp.example.com/",
				}
			},
			want: map[string]string{"AUTH_JWT_PUBLIC_KEY_FILE": "/etc/presence/jwt-public-key/key.pem",
				"AUTH_JWT_AUDIENCE": "chat", "AUTH_JWT_ISSUER": "https://idp.example.com/"},
			absent: []string{"AUTH_JWT_SECRET_FILE", "AUTH_JWT_JWKS_URL", "AUTH_REQUIRE_WATCH_CLAIM"},
		},
		{
			name: "JWKS URL",
			gw: func(gw *presencev1alpha1.PresenceGateway) {
				gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWKSURL: "https://idp.example.com/jwks.json", RequireWatchClaim: true}
			},
			want:   map[string]string{"AUTH_JWT_JWKS_URL": "https://idp.example.com/jwks.json", "AUTH_REQUIRE_WATCH_CLAIM": "true"},
			absent: []string{"AUTH_JWT_SECRET_FILE", "AUTH_JWT_PUBLIC_KEY_FILE", "AUTH_JWT_AUDIENCE", "AUTH_JWT_ISSUER"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			dep := Deployment(testGateway(tt.gw), testDeps(tt.deps), "img:1")
			env := envMap(dep.Spec.Template.Spec.Containers[0].Env)
			for k, v := range tt.want {
				g.Expect(env).To(HaveKey(k))
				g.Expect(env[k].Value).To(Equal(v), k)
			}
			for _, k := range tt.absent {
				g.Expect(env).NotTo(HaveKey(k))
			}
		})
	}
}

// TestDeploymentNoSecretInEnv: the Redis credentials and the JWT secret
// reach the pods only as files of mounted Secret volumes (whole volumes,
// never subPath, so that the kubelet updates them in place): no value and
// no secretKeyRef in the environment.
func TestDeploymentNoSecretInEnv(t *testing.T) {
	g := NewWithT(t)
	deps := testDeps(withAuth)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt", Key: "hs256"}}
	})
	deps.JWT = &corev1.Secret{Data: map[string][]byte{"hs256": []byte("jwt-secret-value")}}
	dep := Deployment(gw, deps, "img:1")
	c := dep.Spec.Template.Spec.Containers[0]
	for _, e := range c.Env {
		g.Expect(e.Value).NotTo(Or(ContainSubstring("pw-1"), ContainSubstring("jwt-secret-value")), e.Name)
		g.Expect(e.ValueFrom).To(BeNil(), "%s comes from a reference, read only at start", e.Name)
	}
	g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElements(
		HaveField("VolumeSource.Secret.SecretName", "redis-auth"),
		And(HaveField("VolumeSource.Secret.SecretName", "jwt"),
			HaveField("VolumeSource.Secret.Items", Equal([]corev1.KeyToPath{{Key: "hs256", Path: "secret"}}))),
		HaveField("VolumeSource.ConfigMap.Name", "chat-redis-nodes"),
	))
	g.Expect(c.VolumeMounts).To(ContainElements(
		And(HaveField("MountPath", "/etc/presence/redis"), HaveField("ReadOnly", true)),
		And(HaveField("MountPath", "/etc/presence/jwt"), HaveField("ReadOnly", true)),
		And(HaveField("MountPath", "/etc/presence/redis-nodes"), HaveField("ReadOnly", true)),
	))
	for _, m := range c.VolumeMounts {
		g.Expect(m.SubPath).To(BeEmpty(), "a subPath mount is never updated by the kubelet: %s", m.Name)
	}
}

func TestDeploymentPodShape(t *testing.T) {
	g := NewWithT(t)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.PodLabels = map[string]string{"team": "chat", "app.kubernetes.io/name": "hijack"}
		gw.Spec.PodAnnotations = map[string]string{"sidecar": "no"}
		gw.Spec.NodeSelector = map[string]string{"pool": "ws"}
		gw.Spec.PriorityClassName = "high"
		gw.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		gw.Spec.Tolerations = []corev1.Toleration{{Key: "ws", Operator: corev1.TolerationOpExists}}
	})
	dep := Deployment(gw, testDeps(nil), "img:1")
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

// TestSharedChangesLeaveTheTemplate: what a RedisCluster shares with every
// gateway referencing it (its nodes, its credentials Secret's content and
// version) and the JWT Secret's content and version never reach the pod
// template, so changing them restarts no pod; the nodes reach the
// ConfigMap the pods mount. Nothing in the template is a function of a
// Secret's content.
func TestSharedChangesLeaveTheTemplate(t *testing.T) {
	g := NewWithT(t)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt"}}
	})
	withJWT := func(d *Deps) {
		withAuth(d)
		d.JWT = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{UID: "jwt-uid", ResourceVersion: "7"}, Data: map[string][]byte{"secret": []byte("k1")}}
	}
	base := Deployment(gw, testDeps(withJWT), "img:1").Spec.Template
	baseNodes := RedisNodesConfigMap(gw, testDeps(withJWT)).Data

	for name, mutate := range map[string]func(*Deps){
		"password rotated": func(d *Deps) {
			d.RedisAuth.Data["password"] = []byte("pw-2")
			d.RedisAuth.ResourceVersion = "101"
		},
		"auth Secret re-created": func(d *Deps) { d.RedisAuth.UID = "another-uid" },
		"JWT secret rotated": func(d *Deps) {
			d.JWT.Data["secret"] = []byte("k2")
			d.JWT.ResourceVersion = "8"
		},
		"seed nodes changed":   func(d *Deps) { d.Redis.Spec.External.Nodes = []string{"redis-9.redis:6379"} },
		"Redis health changed": func(d *Deps) { d.Redis.Status.ClusterState = "fail" },
	} {
		deps := testDeps(withJWT)
		mutate(&deps)
		g.Expect(Deployment(gw, deps, "img:1").Spec.Template).To(Equal(base), name)
		nodes := RedisNodesConfigMap(gw, deps).Data
		if name == "seed nodes changed" {
			g.Expect(nodes).To(Equal(map[string]string{"nodes": "redis-9.redis.chat.svc:6379\n"}), "the ConfigMap follows the nodes, qualified")
		} else {
			g.Expect(nodes).To(Equal(baseNodes), name)
		}
	}
	g.Expect(baseNodes).To(Equal(map[string]string{"nodes": "redis-0.redis.chat.svc:6379\nredis-1.redis.chat.svc:6379\n"}))

	// With spec.serviceRef, the seeds the operator resolved from the
	// Service's endpoints, not the nodes the cluster announced.
	fromService := testDeps(func(d *Deps) {
		d.Redis.Spec.External = nil
		d.Redis.Spec.ServiceRef = &presencev1alpha1.RedisServiceRef{Name: "redis", Port: 6379}
		d.Redis.Status.Seeds = []string{"redis-0.redis.chat.svc:6379"}
		d.Redis.Status.Nodes = []string{"10.0.0.1:6379"}
	})
	g.Expect(RedisNodesConfigMap(gw, fromService).Data).To(Equal(map[string]string{"nodes": "redis-0.redis.chat.svc:6379\n"}))
}

// TestEnvNamesAreGatewaySettings: every variable the operator sets on the
// gateway container (the user's spec.env aside) is one the gateway reads,
// as gateway/config lists them.
func TestEnvNamesAreGatewaySettings(t *testing.T) {
	g := NewWithT(t)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Websocket = presencev1alpha1.WebsocketSpec{MaxConnectionsPerPod: ptr.To[int32](10), AllowedOrigins: []string{"https://a.example"}}
		gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt"}, RequireWatchClaim: true}
	})
	for _, deps := range []func(*Deps){withAuth, withTLSAndUser(&presencev1alpha1.KeySourceRef{SecretKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "ca", Key: "ca.crt"}}, "redis.example.internal", false),
		withTLSAndUser(nil, "", true)} {
		for _, e := range Deployment(gw, testDeps(deps), "img:1").Spec.Template.Spec.Containers[0].Env {
			g.Expect(gwconfig.OperatorSettings).To(ContainElement(e.Name), "the operator sets %s, which gateway/config does not list", e.Name)
		}
	}
}

// withTLSAndUser gives the RedisCluster spec.tls (with ca, serverName and
// skip) and an ACL user in spec.auth.username.
func withTLSAndUser(ca *presencev1alpha1.KeySourceRef, serverName string, skip bool) func(*Deps) {
	return func(d *Deps) {
		withAuth(d)
		delete(d.RedisAuth.Data, "username")
		d.Redis.Spec.Auth.Username = "presence"
		d.Redis.Spec.TLS = &presencev1alpha1.RedisTLS{Enabled: true, CARef: ca, ServerName: serverName, InsecureSkipVerify: skip}
	}
}

// TestDeploymentRedisTLS: spec.tls reaches the pods as REDIS_TLS and the
// server name settings, and its CA (from a Secret or a ConfigMap) as one
// mounted file, a whole volume with one item (no subPath, so the kubelet
// updates it and the gateway re-reads it); spec.auth.username is
// REDIS_USERNAME, in place of the Secret's username file.
func TestDeploymentRedisTLS(t *testing.T) {
	tests := []struct {
		name       string
		deps       func(*Deps)
		wantEnv    map[string]string
		absent     []string
		wantVolume types.GomegaMatcher // nil: no CA volume
	}{
		{
			name: "CA from a Secret, server name, ACL user",
			deps: withTLSAndUser(&presencev1alpha1.KeySourceRef{SecretKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "redis-tls", Key: "ca.crt"}}, "redis.example.internal", false),
			wantEnv: map[string]string{"REDIS_TLS": "true", "REDIS_TLS_CA_FILE": "/etc/presence/redis-tls/ca.crt",
				"REDIS_TLS_SERVER_NAME": "redis.example.internal", "REDIS_USERNAME": "presence", "REDIS_PASSWORD_FILE": "/etc/presence/redis/password"},
			absent: []string{"REDIS_TLS_INSECURE_SKIP_VERIFY", "REDIS_USERNAME_FILE"},
			wantVolume: And(HaveField("VolumeSource.Secret.SecretName", "redis-tls"),
				HaveField("VolumeSource.Secret.Items", Equal([]corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}))),
		},
		{
			name:    "CA from a ConfigMap",
			deps:    withTLSAndUser(&presencev1alpha1.KeySourceRef{ConfigMapKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "bundle", Key: "root-certs.pem"}}, "", false),
			wantEnv: map[string]string{"REDIS_TLS": "true", "REDIS_TLS_CA_FILE": "/etc/presence/redis-tls/ca.crt"},
			absent:  []string{"REDIS_TLS_INSECURE_SKIP_VERIFY", "REDIS_TLS_SERVER_NAME"},
			wantVolume: And(HaveField("VolumeSource.ConfigMap.Name", "bundle"),
				HaveField("VolumeSource.ConfigMap.Items", Equal([]corev1.KeyToPath{{Key: "root-certs.pem", Path: "ca.crt"}}))),
		},
		{
			name:    "skip verification (tests only)",
			deps:    withTLSAndUser(nil, "", true),
			wantEnv: map[string]string{"REDIS_TLS": "true", "REDIS_TLS_INSECURE_SKIP_VERIFY": "true"},
			absent:  []string{"REDIS_TLS_CA_FILE", "REDIS_TLS_SERVER_NAME"},
		},
		{
			name: "disabled",
			deps: func(d *Deps) {
				d.Redis.Spec.TLS = &presencev1alpha1.RedisTLS{Enabled: false}
			},
			absent: []string{"REDIS_TLS", "REDIS_TLS_CA_FILE", "REDIS_TLS_SERVER_NAME", "REDIS_TLS_INSECURE_SKIP_VERIFY"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			dep := Deployment(testGateway(nil), testDeps(tt.deps), "img:1")
			pod := dep.Spec.Template.Spec
			env := envMap(pod.Containers[0].Env)
			for k, v := range tt.wantEnv {
				g.Expect(env).To(HaveKey(k))
				g.Expect(env[k].Value).To(Equal(v), k)
			}
			for _, k := range tt.absent {
				g.Expect(env).NotTo(HaveKey(k))
			}
			if tt.wantVolume == nil {
				g.Expect(pod.Volumes).NotTo(ContainElement(HaveField("Name", "redis-tls-ca")))
				return
			}
			g.Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", "redis-tls-ca"), tt.wantVolume)))
			g.Expect(pod.Containers[0].VolumeMounts).To(ContainElement(And(HaveField("Name", "redis-tls-ca"),
				HaveField("MountPath", "/etc/presence/redis-tls"), HaveField("ReadOnly", true), HaveField("SubPath", ""))))
		})
	}
}

// TestDeploymentMountsPublicKey: spec.auth.jwtPublicKeyRef's one key is
// mounted as key.pem from its Secret or its ConfigMap, as a whole volume
// (no subPath, so the kubelet updates it in place and a rotation restarts
// nothing), and its content never reaches the pod template.
func TestDeploymentMountsPublicKey(t *testing.T) {
	for name, ref := range map[string]*presencev1alpha1.KeySourceRef{
		"secret":    {SecretKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "idp-keys", Key: "es256.pem"}},
		"configmap": {ConfigMapKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "idp-keys", Key: "es256.pem"}},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			dep := Deployment(testGateway(func(gw *presencev1alpha1.PresenceGateway) {
				gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWTPublicKeyRef: ref}
			}), testDeps(nil), "img:1")
			pod := dep.Spec.Template.Spec
			items := []corev1.KeyToPath{{Key: "es256.pem", Path: "key.pem"}}
			var want OmegaMatcher
			if ref.SecretKeyRef != nil {
				want = And(HaveField("VolumeSource.Secret.SecretName", "idp-keys"), HaveField("VolumeSource.Secret.Items", items),
					HaveField("VolumeSource.ConfigMap", BeNil()))
			} else {
				want = And(HaveField("VolumeSource.ConfigMap.Name", "idp-keys"), HaveField("VolumeSource.ConfigMap.Items", items),
					HaveField("VolumeSource.Secret", BeNil()))
			}
			g.Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", "jwt-public-key"), want)))
			g.Expect(pod.Containers[0].VolumeMounts).To(ContainElement(And(
				HaveField("Name", "jwt-public-key"), HaveField("MountPath", "/etc/presence/jwt-public-key"),
				HaveField("ReadOnly", true), HaveField("SubPath", ""))))
		})
	}
}

// TestPlatformAssignsIDs: on OpenShift the restricted SCC assigns the user,
// group and fsGroup from the namespace's range and refuses pods that pin
// others, so none is pinned there; the rest of the hardening stays.
func TestPlatformAssignsIDs(t *testing.T) {
	g := NewWithT(t)
	pinned := Deployment(testGateway(nil), testDeps(nil), "img:1").Spec.Template.Spec
	g.Expect(pinned.SecurityContext.FSGroup).To(Equal(ptr.To[int64](65532)))
	g.Expect(pinned.Containers[0].SecurityContext.RunAsUser).To(Equal(ptr.To[int64](65532)))

	pod := Deployment(testGateway(nil), testDeps(func(d *Deps) { d.PlatformAssignsIDs = true }), "img:1").Spec.Template.Spec
	c := pod.Containers[0].SecurityContext
	g.Expect(pod.SecurityContext.FSGroup).To(BeNil())
	g.Expect(c.RunAsUser).To(BeNil())
	g.Expect(c.RunAsGroup).To(BeNil())
	g.Expect(c.RunAsNonRoot).To(Equal(ptr.To(true)))
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(Equal(ptr.To(true)))
	g.Expect(c.ReadOnlyRootFilesystem).To(Equal(ptr.To(true)))
	g.Expect(c.AllowPrivilegeEscalation).To(Equal(ptr.To(false)))
	g.Expect(c.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
}

// TestTemplate: spec.template adds sidecars, init containers, volumes and
// gateway mounts after the operator's, replaces the service account, token
// mount and grace period, and replaces only the security context fields it
// sets; the selector labels and the gateway container stay the operator's.
func TestTemplate(t *testing.T) {
	g := NewWithT(t)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.PodLabels = map[string]string{"tier": "from-podLabels"}
		gw.Spec.Template = &presencev1alpha1.PodTemplate{
			Metadata: presencev1alpha1.PodTemplateMetadata{
				Labels:      map[string]string{"tier": "from-template", "team": "chat", "app.kubernetes.io/instance": "hijack"},
				Annotations: map[string]string{"example.test/note": "1"},
			},
			Spec: presencev1alpha1.PodTemplateSpec{
				ServiceAccountName:            "presence",
				AutomountServiceAccountToken:  ptr.To(true),
				SecurityContext:               &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), FSGroup: ptr.To[int64](2000)},
				InitContainers:                []corev1.Container{{Name: "warm", Image: "busybox"}},
				Containers:                    []corev1.Container{{Name: "proxy", Image: "envoy"}},
				Volumes:                       []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				GatewayVolumeMounts:           []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}},
				TerminationGracePeriodSeconds: ptr.To[int64](90),
			},
		}
	})
	tmpl := Deployment(gw, testDeps(nil), "img:1").Spec.Template
	pod := tmpl.Spec
	g.Expect(tmpl.Labels).To(HaveKeyWithValue("tier", "from-podLabels"), "podLabels win over the template's")
	g.Expect(tmpl.Labels).To(HaveKeyWithValue("team", "chat"))
	g.Expect(tmpl.Labels).To(HaveKeyWithValue("app.kubernetes.io/instance", "chat"), "the selector labels win")
	g.Expect(tmpl.Annotations).To(HaveKeyWithValue("example.test/note", "1"))
	g.Expect(pod.ServiceAccountName).To(Equal("presence"))
	g.Expect(pod.AutomountServiceAccountToken).To(Equal(ptr.To(true)))
	g.Expect(pod.TerminationGracePeriodSeconds).To(Equal(ptr.To[int64](90)))
	g.Expect(pod.SecurityContext.RunAsUser).To(Equal(ptr.To[int64](1000)))
	g.Expect(pod.SecurityContext.FSGroup).To(Equal(ptr.To[int64](2000)))
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(Equal(ptr.To(true)), "fields the template leaves out stay the operator's")
	g.Expect(pod.SecurityContext.SeccompProfile).NotTo(BeNil())
	g.Expect(pod.InitContainers).To(ConsistOf(HaveField("Name", "warm")))
	g.Expect(pod.Containers).To(HaveLen(2))
	g.Expect(pod.Containers[0].Name).To(Equal("gateway"), "the operator's container first, unchanged")
	g.Expect(pod.Containers[1].Name).To(Equal("proxy"))
	g.Expect(pod.Volumes).To(ContainElement(HaveField("Name", "cache")))
	g.Expect(pod.Containers[0].VolumeMounts).To(ContainElement(HaveField("MountPath", "/cache")))
	g.Expect(TemplateConflicts(gw, testDeps(nil))).To(BeEmpty())
}

func TestTemplateConflicts(t *testing.T) {
	g := NewWithT(t)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Template = &presencev1alpha1.PodTemplate{Spec: presencev1alpha1.PodTemplateSpec{
			Volumes:             []corev1.Volume{{Name: "tmp"}, {Name: "redis-nodes"}},
			GatewayVolumeMounts: []corev1.VolumeMount{{Name: "x", MountPath: "/tmp"}},
			InitContainers:      []corev1.Container{{Name: "proxy"}},
			Containers:          []corev1.Container{{Name: "proxy"}},
		}}
	})
	g.Expect(TemplateConflicts(gw, testDeps(nil))).To(ConsistOf(
		`spec.template.spec.volumes: "tmp" is the operator's volume`,
		`spec.template.spec.volumes: "redis-nodes" is the operator's volume`,
		"spec.template.spec.gatewayVolumeMounts: /tmp is where the operator mounts its own volume",
		`spec.template.spec: the container name "proxy" is used twice`,
	))
}
