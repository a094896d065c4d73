package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// setPaused sets (true) or removes (false) the pause annotation.
func setPaused(t *testing.T, obj client.Object, paused bool) {
	t.Helper()
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	if paused {
		ann[presencev1alpha1.AnnotationReconcile] = "false"
	} else {
		delete(ann, presencev1alpha1.AnnotationReconcile)
	}
	obj.SetAnnotations(ann)
	NewWithT(t).Expect(k8sClient.Patch(context.Background(), obj, patch)).To(Succeed())
}

// pausedAt matches a Paused=True condition computed from generation gen:
// the reconcile of that generation ran and stopped at the pause.
func pausedAt(gen int64) OmegaMatcher {
	return And(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReconcilePaused),
		WithTransform(func(c metav1.Condition) int64 { return c.ObservedGeneration }, BeNumerically("==", gen)))
}

func TestPausedGatewayKeepsItsObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	gw := createGateway(t, ns, "chat", "presence-redis", nil)
	waitDeployment(t, ns, "chat")

	setPaused(t, gw, true)
	gwCondition := func(g Gomega) metav1.Condition {
		live := &presencev1alpha1.PresenceGateway{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(gw), live)).To(Succeed())
		c := meta.FindStatusCondition(live.Status.Conditions, presencev1alpha1.ConditionPaused)
		g.Expect(c).NotTo(BeNil())
		return *c
	}
	eventually(t, gwCondition).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReconcilePaused))

	// A spec change while paused: its reconcile runs (the Paused condition
	// follows the new generation) and leaves the Deployment as it was.
	g.Expect(get(ctx, gw)).To(Succeed())
	patch := client.MergeFrom(gw.DeepCopy())
	gw.Spec.Image = "example.test/presence-gateway:paused"
	g.Expect(k8sClient.Patch(ctx, gw, patch)).To(Succeed())
	gen := gw.Generation
	eventually(t, gwCondition).Should(pausedAt(gen))
	dep := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(gw), dep)).To(Succeed())
	g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(testGatewayImage), "a paused gateway's Deployment changed")
	g.Expect(get(ctx, gw)).To(Succeed())
	g.Expect(gw.Status.ObservedGeneration).To(BeNumerically("<", gen), "a paused gateway's status claims the new generation")

	// Resuming applies the change and removes the condition.
	setPaused(t, gw, false)
	eventually(t, func(g Gomega) string {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(gw), dep)).To(Succeed())
		return dep.Spec.Template.Spec.Containers[0].Image
	}).Should(Equal("example.test/presence-gateway:paused"))
	eventually(t, func(g Gomega) *metav1.Condition {
		g.Expect(get(ctx, gw)).To(Succeed())
		return meta.FindStatusCondition(gw.Status.Conditions, presencev1alpha1.ConditionPaused)
	}).Should(BeNil())
}

func TestPausedRedisClusterIsNotChecked(t *testing.T) {
	requireRedisCluster(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	rc := createRedisCluster(t, ns, "real", testRedisNodes[:1], "")
	eventually(t, clusterCondition(ns, "real", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK))

	setPaused(t, rc, true)
	rcCondition := func(g Gomega) metav1.Condition {
		live := &presencev1alpha1.RedisCluster{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(rc), live)).To(Succeed())
		c := meta.FindStatusCondition(live.Status.Conditions, presencev1alpha1.ConditionPaused)
		g.Expect(c).NotTo(BeNil())
		return *c
	}
	eventually(t, rcCondition).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReconcilePaused))

	// Point it at a closed port while paused: no check runs, Ready stays
	// what the last check found.
	g.Expect(get(ctx, rc)).To(Succeed())
	patch := client.MergeFrom(rc.DeepCopy())
	closed := closedPort(t)
	rc.Spec.External.Nodes = []string{closed}
	g.Expect(k8sClient.Patch(ctx, rc, patch)).To(Succeed())
	gen := rc.Generation
	eventually(t, rcCondition).Should(pausedAt(gen))
	g.Expect(get(ctx, rc)).To(Succeed())
	ready := meta.FindStatusCondition(rc.Status.Conditions, presencev1alpha1.ConditionReady)
	g.Expect(ready.Reason).To(Equal(presencev1alpha1.ReasonClusterOK), "a paused RedisCluster was checked")
	g.Expect(rc.Status.ObservedGeneration).To(BeNumerically("<", gen))

	// Resuming checks the new spec.
	setPaused(t, rc, false)
	eventually(t, clusterCondition(ns, "real", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonUnreachable),
		HaveField("Message", ContainSubstring(closed))))
	g.Expect(get(ctx, rc)).To(Succeed())
	g.Expect(meta.FindStatusCondition(rc.Status.Conditions, presencev1alpha1.ConditionPaused)).To(BeNil())
}
