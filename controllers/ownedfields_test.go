package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

// deploymentUpdates counts the "Updated Deployment NAME" events about the
// PresenceGateway name: one per Update the reconciler sent. An event
// repeated into a series counts at least twice.
func deploymentUpdates(g Gomega, ns, name string) int {
	n := 0
	for _, e := range eventsFor(g, ns, name) {
		if e.Reason != "Updated" || !strings.HasPrefix(e.Note, "Updated Deployment "+name+" ") {
			continue
		}
		n++
		if e.Series != nil {
			n += int(e.Series.Count)
		}
	}
	return n
}

// TestOthersChangesToDeploymentWriteNothing: what the Deployment controller
// and users do to the gateway Deployment (status, the revision annotation,
// an unrelated annotation) is not drift. The operator keeps it and sends no
// Update; a change to a field it owns (the image, one of its labels) is
// still put back, with exactly one Update.
func TestOthersChangesToDeploymentWriteNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	createGateway(t, ns, "chat", "presence-redis", nil)
	dep := waitDeployment(t, ns, "chat")

	// The Deployment controller's status write; the reconcile it wakes
	// writes the gateway's status (readyReplicas), which is how we know it ran.
	markRolledOut(t, dep)
	eventually(t, func(g Gomega) int32 {
		gw := &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
		g.Expect(get(ctx, gw)).To(Succeed())
		return gw.Status.ReadyReplicas
	}).Should(Equal(int32(2)))

	// The Deployment controller's revision annotation and a user's own
	// annotation, as `kubectl annotate` adds them.
	others := map[string]string{"deployment.kubernetes.io/revision": "1", "example.test/note": "someone else's"}
	reconciles := gatewayReconciles.in(ns)
	woken := reconciles()
	eventually(t, func() error {
		if err := get(ctx, dep); err != nil {
			return err
		}
		if dep.Annotations == nil {
			dep.Annotations = map[string]string{}
		}
		for k, v := range others {
			dep.Annotations[k] = v
		}
		return k8sClient.Update(ctx, dep)
	}).Should(Succeed())
	eventually(t, reconciles).Should(BeNumerically(">", woken))

	// Then drift of what the operator owns: the image and one of its labels.
	eventually(t, func() error {
		if err := get(ctx, dep); err != nil {
			return err
		}
		dep.Spec.Template.Spec.Containers[0].Image = "example.test/someone-else:latest"
		delete(dep.Labels, "app.kubernetes.io/component")
		return k8sClient.Update(ctx, dep)
	}).Should(Succeed())
	eventually(t, func(g Gomega) {
		g.Expect(get(ctx, dep)).To(Succeed())
		g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(testGatewayImage))
		g.Expect(dep.Labels).To(HaveKeyWithValue("app.kubernetes.io/component", "gateway"))
	}).Should(Succeed())
	for k, v := range others {
		g.Expect(dep.Annotations).To(HaveKeyWithValue(k, v), "an annotation the operator does not own survives")
	}

	// One Update in all: the drift correction. The status write and the
	// annotations caused none.
	eventually(t, func(g Gomega) int { return deploymentUpdates(g, ns, "chat") }).Should(Equal(1))
	NewWithT(t).Consistently(func(g Gomega) int { return deploymentUpdates(g, ns, "chat") }).
		WithTimeout(time.Second).WithPolling(200 * time.Millisecond).Should(Equal(1))
}

// TestRenderedObjectsSurviveAPIServerDefaults: every object the builders
// render, applied and stored by the API server (which fills in its
// defaults), is up to date for the applier. A default the comparison does
// not allow for would send an apply on every reconcile.
func TestRenderedObjectsSurviveAPIServerDefaults(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	a := newApplier(k8sClient, testScheme)
	for name, mutate := range map[string]func(*presencev1alpha1.PresenceGateway){
		"defaults": nil,
		"options": func(gw *presencev1alpha1.PresenceGateway) {
			gw.Spec.Replicas = ptr.To[int32](3)
			gw.Spec.ImagePullPolicy = corev1.PullAlways
			gw.Spec.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.25"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			}
			// The user's variables, with references the API server completes
			// (fieldRef apiVersion, resourceFieldRef divisor).
			gw.Spec.Env = []corev1.EnvVar{
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "MEMORY_LIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}},
			}
			gw.Spec.Websocket.AllowedOrigins = []string{"https://example.test"}
			gw.Spec.Websocket.MaxConnectionsPerPod = ptr.To[int32](1000)
			gw.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "presence", Effect: corev1.TaintEffectNoSchedule}}
			gw.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector: &metav1.LabelSelector{MatchLabels: gwspecs.SelectorLabels(gw)},
			}}
			gw.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{
					TopologyKey: "kubernetes.io/hostname", LabelSelector: &metav1.LabelSelector{MatchLabels: gwspecs.SelectorLabels(gw)},
				}}},
			}}
			gw.Spec.Service.Type = corev1.ServiceTypeNodePort
			gw.Spec.Service.Annotations = map[string]string{"example.test/lb": "yes"}
			gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt"}}
			gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 5, TargetConnectionsPerPod: ptr.To[int32](1000)}
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			gw := testGateway(mutate)
			gw.Namespace = ns
			gw.Name = name
			deps := testDeps(nil)
			if gw.Spec.Auth != nil {
				deps = testDeps(withAuth)
			}

			// The PresenceGateway itself is never created: its reconciler
			// leaves objects whose owner it cannot find alone.
			gw.UID = types.UID("00000000-0000-0000-0000-0000000000" + map[string]string{"defaults": "01", "options": "02"}[name])
			objs := []client.Object{gwspecs.Deployment(gw, deps, "img:1"), gwspecs.Service(gw), gwspecs.PDB(gw)}
			if hpa := gwspecs.HPA(gw); hpa != nil {
				objs = append(objs, hpa)
			}
			for _, desired := range objs {
				live, err := newObject(desired, testScheme)
				g.Expect(err).NotTo(HaveOccurred())
				res, err := a.apply(ctx, gw, desired, live, false, false)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(res).To(Equal(applyCreated), "%T", desired)

				stored, err := newObject(desired, testScheme)
				g.Expect(err).NotTo(HaveOccurred())
				stored.SetNamespace(ns)
				stored.SetName(desired.GetName())
				g.Expect(get(ctx, stored)).To(Succeed())
				config, err := a.applyConfig(desired, false)
				g.Expect(err).NotTo(HaveOccurred())
				same, err := a.upToDate(stored, config)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(same).To(BeTrue(), "the stored %T is seen as different from what was applied: a default the comparison does not allow for", desired)
			}
		})
	}
}
