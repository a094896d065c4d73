package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

// withEveryOptionalField sets every optional field of the pod template and
// the Service that a user may later remove.
func withEveryOptionalField(gw *presencev1alpha1.PresenceGateway) {
	gw.Spec.NodeSelector = map[string]string{"pool": "ws"}
	gw.Spec.Tolerations = []corev1.Toleration{{Key: "ws", Operator: corev1.TolerationOpExists}}
	gw.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"ws"}}},
		}}},
	}}
	gw.Spec.PriorityClassName = "high"
	gw.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	gw.Spec.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	gw.Spec.PodAnnotations = map[string]string{"example.test/a": "1", "example.test/b": "2"}
	gw.Spec.PodLabels = map[string]string{"team-a": "1", "team-b": "2"}
	gw.Spec.Service.Annotations = map[string]string{"example.test/lb-a": "1", "example.test/lb-b": "2"}
	gw.Spec.Service.Labels = map[string]string{"team-a": "1", "team-b": "2"}
	gw.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
	gw.Spec.Service.LoadBalancerSourceRanges = []string{"203.0.113.0/24"}
	gw.Spec.Service.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}

// TestRemovedSpecFieldsLeaveTheObjects: removing an optional field from a
// PresenceGateway removes it from the Deployment or Service, and only it.
func TestRemovedSpecFieldsLeaveTheObjects(t *testing.T) {
	requireAPIServer(t)
	tests := []struct {
		name   string
		remove func(*presencev1alpha1.PresenceGateway)
		// field reads what the removal must empty; kept what it must not.
		field, kept func(dep *appsv1.Deployment, svc *corev1.Service) any
	}{
		{"nodeSelector", func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.NodeSelector = nil },
			func(d *appsv1.Deployment, _ *corev1.Service) any { return d.Spec.Template.Spec.NodeSelector }, nil},
		{"tolerations", func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Tolerations = nil },
			func(d *appsv1.Deployment, _ *corev1.Service) any { return d.Spec.Template.Spec.Tolerations }, nil},
		{"affinity", func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Affinity = nil },
			func(d *appsv1.Deployment, _ *corev1.Service) any { return d.Spec.Template.Spec.Affinity }, nil},
		{"priorityClassName", func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.PriorityClassName = "" },
			func(d *appsv1.Deployment, _ *corev1.Service) any { return d.Spec.Template.Spec.PriorityClassName }, nil},
		{"imagePullSecrets", func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.ImagePullSecrets = nil },
			func(d *appsv1.Deployment, _ *corev1.Service) any { return d.Spec.Template.Spec.ImagePullSecrets }, nil},
		{"resources.limits", func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Resources.Limits = nil },
			func(d *appsv1.Deployment, _ *corev1.Service) any {
				return d.Spec.Template.Spec.Containers[0].Resources.Limits
			},
			func(d *appsv1.Deployment, _ *corev1.Service) any {
				return d.Spec.Template.Spec.Containers[0].Resources.Requests
			}},
		{"one podAnnotation", func(gw *presencev1alpha1.PresenceGateway) { delete(gw.Spec.PodAnnotations, "example.test/a") },
			func(d *appsv1.Deployment, _ *corev1.Service) any {
				return d.Spec.Template.Annotations["example.test/a"]
			},
			func(d *appsv1.Deployment, _ *corev1.Service) any {
				return d.Spec.Template.Annotations["example.test/b"]
			}},
		{"one podLabel", func(gw *presencev1alpha1.PresenceGateway) { delete(gw.Spec.PodLabels, "team-a") },
			func(d *appsv1.Deployment, _ *corev1.Service) any { return d.Spec.Template.Labels["team-a"] },
			func(d *appsv1.Deployment, _ *corev1.Service) any { return d.Spec.Template.Labels["team-b"] }},
		{"one Service annotation", func(gw *presencev1alpha1.PresenceGateway) { delete(gw.Spec.Service.Annotations, "example.test/lb-a") },
			func(_ *appsv1.Deployment, s *corev1.Service) any { return s.Annotations["example.test/lb-a"] },
			func(_ *appsv1.Deployment, s *corev1.Service) any { return s.Annotations["example.test/lb-b"] }},
		{"every Service annotation", func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Service.Annotations = nil },
			func(_ *appsv1.Deployment, s *corev1.Service) any { return s.Annotations }, nil},
		{"one Service label", func(gw *presencev1alpha1.PresenceGateway) { delete(gw.Spec.Service.Labels, "team-a") },
			func(_ *appsv1.Deployment, s *corev1.Service) any { return s.Labels["team-a"] },
			func(_ *appsv1.Deployment, s *corev1.Service) any { return s.Labels["team-b"] }},
		{"loadBalancerSourceRanges", func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Service.LoadBalancerSourceRanges = nil },
			func(_ *appsv1.Deployment, s *corev1.Service) any { return s.Spec.LoadBalancerSourceRanges },
			func(_ *appsv1.Deployment, s *corev1.Service) any {
				return s.Spec.Type == corev1.ServiceTypeLoadBalancer
			}},
		// The API server defaults a removed externalTrafficPolicy to Cluster.
		{"externalTrafficPolicy", func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Service.ExternalTrafficPolicy = "" },
			func(_ *appsv1.Deployment, s *corev1.Service) any {
				return s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
			}, nil},
	}
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("gw-%d", i)
			gw := createGateway(t, ns, name, "presence-redis", withEveryOptionalField)
			dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			read := func(g Gomega) {
				g.Expect(get(ctx, dep)).To(Succeed())
				g.Expect(get(ctx, svc)).To(Succeed())
			}
			eventually(t, func(g Gomega) {
				read(g)
				g.Expect(tt.field(dep, svc)).NotTo(BeZero(), "set before the removal")
			}).Should(Succeed())

			editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) {
				tt.remove(gw)
			})
			eventually(t, func(g Gomega) {
				read(g)
				g.Expect(tt.field(dep, svc)).To(Or(BeZero(), BeEmpty()), "removed from the spec, so removed from the object")
			}).Should(Succeed())
			if tt.kept != nil {
				NewWithT(t).Expect(tt.kept(dep, svc)).NotTo(BeZero(), "what is still in the spec stays")
			}
		})
	}
}

// TestRolloutRestartSurvivesSpecChanges: `kubectl rollout restart` writes an
// annotation on the pod template; a later change of the spec re-renders the
// template without taking that annotation away (which would restart the
// pods a second time).
func TestRolloutRestartSurvivesSpecChanges(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	gw := createGateway(t, ns, "chat", "presence-redis", nil)
	dep := waitDeployment(t, ns, "chat")

	// What `kubectl rollout restart` sends: a strategic merge patch.
	restart := []byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-01-01T00:00:00Z"}}}}}`)
	NewWithT(t).Expect(k8sClient.Patch(ctx, dep, client.RawPatch(types.StrategicMergePatchType, restart), client.FieldOwner("kubectl-rollout"))).To(Succeed())

	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Presence.TTL = &metav1.Duration{Duration: 90 * time.Second}
	})
	eventually(t, func(g Gomega) {
		g.Expect(get(ctx, dep)).To(Succeed())
		g.Expect(envValue(dep, "PRESENCE_TTL")).To(Equal("1m30s"))
		g.Expect(dep.Spec.Template.Annotations).To(HaveKeyWithValue("kubectl.kubernetes.io/restartedAt", "2026-01-01T00:00:00Z"))
	}).Should(Succeed())
}

// TestUpgradeFromUpdateManagedObjects: objects that an earlier operator
// version wrote with Create and Update (recorded under the manager name its
// user agent gave, "presence-operator", with operation Update) are moved to
// the apply manager once, so that a field removed from the spec is removed
// from them too; after that, an apply of the same spec writes nothing.
func TestUpgradeFromUpdateManagedObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	cfg := rest.CopyConfig(testConfig)
	cfg.UserAgent = "presence-operator/v0.1.0 (linux/amd64)" // what the operator binary sends
	c, err := client.New(cfg, client.Options{Scheme: testScheme})
	g.Expect(err).NotTo(HaveOccurred())
	var writes writeCounter
	a := newApplier(&countingWriter{Client: c, n: &writes}, testScheme)

	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.NodeSelector = map[string]string{"pool": "ws"}
	})
	gw.Namespace, gw.UID = ns, "00000000-0000-0000-0000-000000000010" // never created: no reconciler acts on it
	old := gwspecs.Deployment(gw, testDeps(nil), "img:1")
	g.Expect(controllerutil.SetControllerReference(gw, old, testScheme)).To(Succeed())
	g.Expect(c.Create(ctx, old)).To(Succeed()) // as the earlier version did

	gw.Spec.NodeSelector = nil
	live := &appsv1.Deployment{}
	_, err = a.apply(ctx, gw, gwspecs.Deployment(gw, testDeps(nil), "img:1"), live, false, false)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(get(ctx, live)).To(Succeed())
	g.Expect(live.Spec.Template.Spec.NodeSelector).To(BeEmpty(), "a field the earlier version set is removed with the spec's")

	before := writes.in("")() + writes.in(ns)()
	for range 2 {
		live = &appsv1.Deployment{}
		res, err := a.apply(ctx, gw, gwspecs.Deployment(gw, testDeps(nil), "img:1"), live, false, false)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res).To(Equal(applyNone))
	}
	g.Expect(writes.in("")()+writes.in(ns)()).To(Equal(before), "applying the same spec again wrote")
}
