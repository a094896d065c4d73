package controllers

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	"github.com/presencekit/presence-operator/internal/redistest"
)

// startTLSCluster starts a six-node cluster of the test's own that speaks
// only TLS (hack/redis-cluster.sh with REDIS_CLUSTER_TLS_DIR), on
// PRESENCE_TEST_REDIS_TLS_BASE_PORT or free ports, with a CA made for the
// test and a server certificate for 127.0.0.1 and localhost. It returns the
// cluster and the CA's PEM.
func startTLSCluster(t *testing.T) (*redistest.Cluster, []byte) {
	t.Helper()
	requireRedisOnly(t) // same contract: make test-operator, which has redis-server
	dir := t.TempDir()
	ca := redistest.WriteTLSFiles(t, dir)
	c := redistest.StartCluster(t, filepath.Join("..", "hack", "redis-cluster.sh"), "PRESENCE_TEST_REDIS_TLS_BASE_PORT",
		"REDIS_CLUSTER_TLS_DIR="+dir)
	return c, ca
}

// TestRedisClusterTLS: on a real TLS-only cluster, the health check dials
// with spec.tls as the gateways do (CA, serverName, insecureSkipVerify)
// and says which part of the TLS setup is wrong; then, through the API
// server, a RedisCluster with its CA in a Secret, then in a ConfigMap, is
// Ready with the cluster's shape in its status, a gateway on it gets the
// TLS settings and the CA file, and a rotated CA that does not match is
// found by the next check.
func TestRedisClusterTLS(t *testing.T) {
	cluster, caPEM := startTLSCluster(t)
	otherCA, _, _ := redistest.NewCA(t, "another CA")
	seeds := cluster.Nodes[:1]

	t.Run("check", func(t *testing.T) {
		tests := []struct {
			name       string
			tls        *presencev1alpha1.RedisTLS
			ca         []byte
			wantReason string
			wantText   string
		}{
			{"the cluster's CA", &presencev1alpha1.RedisTLS{Enabled: true}, caPEM, presencev1alpha1.ReasonClusterOK, "3 masters, 3 replicas"},
			{"a server name the certificate names", &presencev1alpha1.RedisTLS{Enabled: true, ServerName: "localhost"}, caPEM, presencev1alpha1.ReasonClusterOK, ""},
			{"a server name it does not name", &presencev1alpha1.RedisTLS{Enabled: true, ServerName: "redis.example.internal"}, caPEM,
				presencev1alpha1.ReasonTLSHandshakeFailed, "redis.example.internal"},
			{"another CA", &presencev1alpha1.RedisTLS{Enabled: true}, otherCA, presencev1alpha1.ReasonTLSHandshakeFailed, "unknown authority"},
			{"the system roots", &presencev1alpha1.RedisTLS{Enabled: true}, nil, presencev1alpha1.ReasonTLSHandshakeFailed, "unknown authority"},
			{"skipping verification (tests only)", &presencev1alpha1.RedisTLS{Enabled: true, InsecureSkipVerify: true}, nil, presencev1alpha1.ReasonClusterOK, ""},
			{"no TLS", nil, nil, presencev1alpha1.ReasonUnreachable, seeds[0]},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				g := NewWithT(t)
				rc := &presencev1alpha1.RedisCluster{Spec: presencev1alpha1.RedisClusterSpec{TLS: tt.tls}}
				h := checkCluster(context.Background(), seeds, redisAccess{tls: checkTLSConfig(rc, tt.ca)}, 5*time.Second)
				ready, _ := clusterConditions(seeds, "", h)
				g.Expect(ready.reason).To(Equal(tt.wantReason), ready.message)
				g.Expect(ready.message).To(ContainSubstring(tt.wantText))
				if tt.wantReason == presencev1alpha1.ReasonClusterOK {
					g.Expect(h.nodes).To(ConsistOf(cluster.Nodes), "the TLS ports the cluster announces")
					g.Expect([]int{h.masters, h.replicas}).To(Equal([]int{3, 3}))
				}
			})
		}
	})

	t.Run("RedisCluster", func(t *testing.T) {
		g := NewWithT(t)
		ctx := context.Background()
		ns := newNamespace(t)
		secret := createSecret(t, ns, "redis-tls", map[string]string{"ca.crt": string(caPEM)})
		rc := &presencev1alpha1.RedisCluster{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls"},
			Spec: presencev1alpha1.RedisClusterSpec{
				External: &presencev1alpha1.ExternalRedisCluster{Nodes: seeds},
				TLS: &presencev1alpha1.RedisTLS{Enabled: true, ServerName: "localhost",
					CARef: &presencev1alpha1.KeySourceRef{SecretKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "redis-tls", Key: "ca.crt"}}},
			},
		}
		g.Expect(k8sClient.Create(ctx, rc)).To(Succeed())
		eventually(t, clusterCondition(ns, "tls", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK))
		g.Expect(get(ctx, rc)).To(Succeed())
		g.Expect(rc.Status.Nodes).To(ConsistOf(cluster.Nodes))
		g.Expect(rc.Status.Masters).To(Equal(int32(3)))
		g.Expect(rc.Status.Replicas).To(Equal(int32(3)))

		// A gateway on it: TLS on, the server name, the CA as one file of
		// a mounted volume.
		createGateway(t, ns, "chat", "tls", nil)
		dep := waitDeployment(t, ns, "chat")
		g.Expect(envValue(dep, "REDIS_TLS")).To(Equal("true"))
		g.Expect(envValue(dep, "REDIS_TLS_SERVER_NAME")).To(Equal("localhost"))
		g.Expect(envValue(dep, "REDIS_TLS_CA_FILE")).To(Equal("/etc/presence/redis-tls/ca.crt"))
		_, skip := envOf(dep, "REDIS_TLS_INSECURE_SKIP_VERIFY")
		g.Expect(skip).To(BeFalse())
		g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElement(And(
			HaveField("VolumeSource.Secret.SecretName", "redis-tls"),
			HaveField("VolumeSource.Secret.Items", Equal([]corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}})))))
		g.Expect(dep.Spec.Template.Spec.Containers[0].VolumeMounts).To(ContainElement(And(
			HaveField("MountPath", "/etc/presence/redis-tls"), HaveField("ReadOnly", true), HaveField("SubPath", ""))))

		// The CA rotated to one that did not sign the nodes' certificates.
		g.Expect(get(ctx, secret)).To(Succeed())
		secret.Data = map[string][]byte{"ca.crt": otherCA}
		g.Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		eventually(t, clusterCondition(ns, "tls", presencev1alpha1.ConditionReady)).Should(And(
			statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonTLSHandshakeFailed),
			HaveField("Message", ContainSubstring("unknown authority"))))

		// The CA in a ConfigMap instead, first missing: the gateway waits
		// for it rather than rendering pods that would wait for the volume.
		editRedisCluster(t, rc, func(rc *presencev1alpha1.RedisCluster) {
			rc.Spec.TLS.CARef = &presencev1alpha1.KeySourceRef{ConfigMapKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "bundle", Key: "root-certs.pem"}}
		})
		eventually(t, clusterCondition(ns, "tls", presencev1alpha1.ConditionReady)).Should(And(
			statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonConfigMapNotFound),
			HaveField("Message", ContainSubstring(`"bundle"`))))
		eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionRedisReady)).Should(And(
			statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonConfigMapNotFound),
			HaveField("Message", ContainSubstring("spec.tls.caRef.configMapKeyRef"))))

		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bundle"}, Data: map[string]string{"root-certs.pem": string(caPEM)}}
		g.Expect(k8sClient.Create(ctx, cm)).To(Succeed())
		eventually(t, clusterCondition(ns, "tls", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK))
		eventually(t, func(g Gomega) {
			g.Expect(get(ctx, dep)).To(Succeed())
			g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElement(And(
				HaveField("VolumeSource.ConfigMap.Name", "bundle"),
				HaveField("VolumeSource.ConfigMap.Items", Equal([]corev1.KeyToPath{{Key: "root-certs.pem", Path: "ca.crt"}})))))
		}).Should(Succeed())
	})
}
