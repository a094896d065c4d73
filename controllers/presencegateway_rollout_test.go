package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

// TestClassifyRollout: why a pod template changes, from the annotations the
// last apply left on the Deployment.
func TestClassifyRollout(t *testing.T) {
	live := func(templateHash, spec string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{UID: "u", Annotations: map[string]string{
			annotationTemplateHash: templateHash, annotationSpec: spec,
		}}}
	}
	desired := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{annotationTemplateHash: "t2"}}}
	for _, tt := range []struct {
		name string
		live *appsv1.Deployment
		spec string
		want rolloutCause
	}{
		{"no Deployment yet", nil, "1/a", causeNone},
		{"same template", live("t2", "1/a"), "2/b", causeNone},
		{"the spec's rendering changed with the generation", live("t1", "1/a"), "2/b", causeSpec},
		{"the default image changed (same generation, same own rendering)", live("t1", "1/a"), "1/a", causeShared},
		{"a spec edit that renders the same, with a shared change pending", live("t1", "1/a"), "2/a", causeShared},
		{"a new operator renders the spec differently (same generation)", live("t1", "1/a"), "1/b", causeShared},
		{"made by an operator without the annotations", live("", ""), "1/a", causeShared},
	} {
		if got := classifyRollout(tt.live, desired, tt.spec); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestSharedRedisChangesRestartNoPod: three PresenceGateways share one
// RedisCluster. Its password Secret is rotated, their JWT Secret too, and
// its seed nodes change: no Deployment gets a new pod template (no pod
// restarts, no client is dropped). What changes is what the pods mount:
// the Secrets they mount by name, and each gateway's seed nodes ConfigMap.
func TestSharedRedisChangesRestartNoPod(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	redisAuth := createSecret(t, ns, "redis-auth", map[string]string{"username": "presence", "password": "one"})
	jwt := createSecret(t, ns, "jwt", map[string]string{"secret": "k1"})
	rc := createRedisCluster(t, ns, "shared", seedNodes, "redis-auth")
	names := []string{"chat", "feed", "games"}
	before := map[string]*appsv1.Deployment{}
	for _, name := range names {
		createGateway(t, ns, name, "shared", func(gw *presencev1alpha1.PresenceGateway) {
			gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt"}}
		})
		dep := waitDeployment(t, ns, name)
		markRolledOut(t, dep)
		eventually(t, func(g Gomega) {
			gw := &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			g.Expect(get(ctx, gw)).To(Succeed())
			g.Expect(gw.Status.RedisNodes).To(Equal(seedNodes))
		}).Should(Succeed())
		g.Expect(get(ctx, dep)).To(Succeed())
		before[name] = dep.DeepCopy()
		g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElements(
			HaveField("VolumeSource.Secret.SecretName", "redis-auth"),
			HaveField("VolumeSource.Secret.SecretName", "jwt"),
			HaveField("VolumeSource.ConfigMap.Name", name+"-redis-nodes")))
	}

	// Rotate both Secrets, then change the seeds.
	g.Expect(get(ctx, redisAuth)).To(Succeed())
	redisAuth.Data["password"] = []byte("two")
	g.Expect(k8sClient.Update(ctx, redisAuth)).To(Succeed())
	g.Expect(get(ctx, jwt)).To(Succeed())
	jwt.Data["secret"] = []byte("k2")
	g.Expect(k8sClient.Update(ctx, jwt)).To(Succeed())
	newSeeds := []string{"127.0.0.1:4", "127.0.0.1:5"}
	eventually(t, func() error { // the check's status writes may race with the edit
		if err := get(ctx, rc); err != nil {
			return err
		}
		rc.Spec.External.Nodes = newSeeds
		return k8sClient.Update(ctx, rc)
	}).Should(Succeed())

	for _, name := range names {
		// status.redisNodes is written last in a reconcile, after the
		// Deployment's apply, by a reconcile that read both Secrets (never
		// cached) after their rotation: once it shows the new seeds, the
		// Deployment is what the rotated Secrets and new seeds render.
		eventually(t, func(g Gomega) {
			gw := &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			g.Expect(get(ctx, gw)).To(Succeed())
			g.Expect(gw.Status.RedisNodes).To(Equal(newSeeds))
		}).Should(Succeed())
		cm := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(ctx, keyOf(ns, name+"-redis-nodes"), cm)).To(Succeed())
		g.Expect(cm.Data).To(Equal(map[string]string{gwspecs.RedisNodesKey: "127.0.0.1:4\n127.0.0.1:5\n"}), name)

		dep := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, keyOf(ns, name), dep)).To(Succeed())
		g.Expect(dep.Generation).To(Equal(before[name].Generation), "%s: the Deployment's spec changed", name)
		g.Expect(dep.Spec.Template).To(Equal(before[name].Spec.Template), "%s: a new pod template restarts every pod", name)
	}
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionProgressing)).Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRolloutComplete))
}

// TestSharedRolloutsTakeTurns: the operator's default image changes (a new
// --gateway-image, so a restarted operator) for three fleets that rely on
// it, with --max-concurrent-rollouts=1. Envtest runs no Deployment
// controller, so the test plays it: it finishes one rollout at a time. At
// every step exactly one fleet has the new template and has not finished;
// the others keep the old template and say RolloutQueued, having been
// looked at; each goes when the one before it finishes, and all end on the
// new image.
func TestSharedRolloutsTakeTurns(t *testing.T) {
	requireRedisCluster(t) // a Ready RedisCluster, so that the gateways can be Ready
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	const v1, v2 = "example.test/presence-gateway:v1", "example.test/presence-gateway:v2"
	restartOperator(t, operatorSettings{defaultImage: v1, maxRollouts: 1, watchNamespaces: []string{ns}})
	createRedisCluster(t, ns, "shared", testRedisNodes, "")
	names := []string{"chat", "feed", "games"}
	for _, name := range names {
		createGateway(t, ns, name, "shared", nil)
	}
	for _, name := range names {
		// New Deployments do not wait for a slot: no pod is replaced.
		dep := waitDeployment(t, ns, name)
		g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(v1))
		markRolledOut(t, dep)
	}

	restartOperator(t, operatorSettings{defaultImage: v2, maxRollouts: 1, watchNamespaces: []string{ns}})
	done := map[string]bool{}
	for range names {
		var rolling string
		eventually(t, func(g Gomega) {
			rolling = ""
			for _, name := range names {
				dep := &appsv1.Deployment{}
				g.Expect(k8sClient.Get(ctx, keyOf(ns, name), dep)).To(Succeed())
				onV2 := dep.Spec.Template.Spec.Containers[0].Image == v2
				if done[name] {
					g.Expect(onV2).To(BeTrue(), "%s went back", name)
					continue
				}
				if onV2 {
					g.Expect(rolling).To(BeEmpty(), "%s and %s roll out at once", rolling, name)
					rolling = name
				}
			}
			g.Expect(rolling).NotTo(BeEmpty(), "no fleet rolls out")
		}).Should(Succeed())
		// The others were looked at and wait, on the old template.
		for _, name := range names {
			if done[name] || name == rolling {
				continue
			}
			eventually(t, gatewayCondition(ns, name, presencev1alpha1.ConditionProgressing)).
				Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRolloutQueued))
			dep := &appsv1.Deployment{}
			g.Expect(k8sClient.Get(ctx, keyOf(ns, name), dep)).To(Succeed())
			g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(v1), "%s rolls out while %s has the slot", name, rolling)
			eventually(t, gatewayCondition(ns, name, presencev1alpha1.ConditionReady)).
				Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReady), "a queued fleet still serves")
		}
		eventually(t, gatewayCondition(ns, rolling, presencev1alpha1.ConditionProgressing)).
			Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonRolloutInProgress))
		markRolledOut(t, waitDeployment(t, ns, rolling))
		done[rolling] = true
	}
	for _, name := range names {
		eventually(t, gatewayCondition(ns, name, presencev1alpha1.ConditionProgressing)).
			Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRolloutComplete))
		eventually(t, gatewayCondition(ns, name, presencev1alpha1.ConditionReady)).
			Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReady))
	}
}

// TestOwnSpecEditSkipsTheQueue: while a shared change waits for a slot, an
// edit of a PresenceGateway's own spec that changes its pods rolls that
// fleet at once (its owner asked for it), and does not take the slot.
func TestOwnSpecEditSkipsTheQueue(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	const v1, v2 = "example.test/presence-gateway:v1", "example.test/presence-gateway:v2"
	restartOperator(t, operatorSettings{defaultImage: v1, maxRollouts: 1, watchNamespaces: []string{ns}})
	createRedisCluster(t, ns, "shared", seedNodes, "")
	for _, name := range []string{"a", "b"} {
		createGateway(t, ns, name, "shared", nil)
		markRolledOut(t, waitDeployment(t, ns, name))
	}
	restartOperator(t, operatorSettings{defaultImage: v2, maxRollouts: 1, watchNamespaces: []string{ns}})
	var holder, queued string
	eventually(t, func(g Gomega) {
		holder, queued = "", ""
		for _, name := range []string{"a", "b"} {
			gw := &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			g.Expect(get(ctx, gw)).To(Succeed())
			switch c := findCondition(gw.Status.Conditions, presencev1alpha1.ConditionProgressing); {
			case c == nil:
			case c.Reason == presencev1alpha1.ReasonRolloutInProgress:
				holder = name
			case c.Reason == presencev1alpha1.ReasonRolloutQueued:
				queued = name
			}
		}
		g.Expect(holder).NotTo(BeEmpty())
		g.Expect(queued).NotTo(BeEmpty())
	}).Should(Succeed())

	gw := &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: queued}}
	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}}
	})
	eventually(t, func(g Gomega) {
		dep := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, keyOf(ns, queued), dep)).To(Succeed())
		g.Expect(envValue(dep, "LOG_LEVEL")).To(Equal("debug"))
		g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(v2), "the pending change comes along")
		g.Expect(dep.Annotations).To(HaveKeyWithValue(annotationRolloutCause, string(causeSpec)))
	}).Should(Succeed())
	eventually(t, gatewayCondition(ns, queued, presencev1alpha1.ConditionProgressing)).
		Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonRolloutInProgress))
	// The slot is still the other fleet's.
	dep := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, keyOf(ns, holder), dep)).To(Succeed())
	g.Expect(holdsRolloutSlot(dep)).To(BeTrue(), "%s holds the slot", holder)
}

func keyOf(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// TestSpecEditOutsideThePodsLeavesTheDeployment: an edit of the spec that
// does not reach the pods (the Service's port) writes nothing on the
// Deployment, not even the annotations that record why its template last
// changed.
func TestSpecEditOutsideThePodsLeavesTheDeployment(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "shared", seedNodes, "")
	gw := createGateway(t, ns, "chat", "shared", nil)
	dep := waitDeployment(t, ns, "chat")
	eventually(t, func(g Gomega) {
		g.Expect(get(ctx, gw)).To(Succeed())
		g.Expect(gw.Status.ObservedGeneration).To(Equal(gw.Generation))
	}).Should(Succeed())
	g.Expect(get(ctx, dep)).To(Succeed())
	rv := dep.ResourceVersion

	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Service.Port = 8081
	})
	svc := &corev1.Service{}
	eventually(t, func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, keyOf(ns, "chat"), svc)).To(Succeed())
		g.Expect(svc.Spec.Ports[0].Port).To(Equal(int32(8081)))
		g.Expect(get(ctx, gw)).To(Succeed())
		g.Expect(gw.Status.ObservedGeneration).To(Equal(gw.Generation), "the reconcile of the edit is over")
	}).Should(Succeed())
	g.Expect(get(ctx, dep)).To(Succeed())
	g.Expect(dep.ResourceVersion).To(Equal(rv), "the Deployment was written: %v", dep.Annotations)
}
