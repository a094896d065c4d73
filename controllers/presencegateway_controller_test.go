package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

// seedNodes are loopback ports nothing listens on: the RedisCluster check
// finds them unreachable without any DNS lookup or off-host traffic.
var seedNodes = []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}

func TestGatewayCreatesOwnedObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "redis-auth", map[string]string{"username": "presence", "password": "s3cret-pw"})
	createRedisCluster(t, ns, "presence-redis", seedNodes, "redis-auth")
	gw := createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MinReplicas: ptr.To[int32](3), MaxReplicas: 20,
			TargetCPUUtilizationPercentage: ptr.To[int32](70), TargetConnectionsPerPod: ptr.To[int32](5000)}
		gw.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
	})

	dep := waitDeployment(t, ns, "chat")
	g.Expect(get(ctx, gw)).To(Succeed())
	expectControlledBy(g, dep, gw)
	g.Expect(*dep.Spec.Replicas).To(Equal(int32(3)), "created at minReplicas")
	g.Expect(envValue(dep, "REDIS_NODES_FILE")).To(Equal("/etc/presence/redis-nodes/nodes"))
	g.Expect(envValue(dep, "REDIS_PASSWORD_FILE")).To(Equal("/etc/presence/redis/password"))
	g.Expect(envValue(dep, "REDIS_USERNAME_FILE")).To(Equal("/etc/presence/redis/username"))
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		g.Expect(e.Value).NotTo(ContainSubstring("s3cret-pw"), "env %s carries the password", e.Name)
	}
	g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElements(
		HaveField("VolumeSource.Secret.SecretName", "redis-auth"),
		HaveField("VolumeSource.ConfigMap.Name", "chat-redis-nodes")))
	g.Expect(dep.Spec.Template.Annotations).To(HaveKeyWithValue("prometheus.io/scrape", "true"))
	g.Expect(dep.Spec.Template.Annotations).To(HaveKeyWithValue("prometheus.io/port", "9090"))
	g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(testGatewayImage), "--gateway-image default")

	nodes := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat-redis-nodes"}}
	eventually(t, func() error { return get(ctx, nodes) }).Should(Succeed())
	expectControlledBy(g, nodes, gw)
	g.Expect(nodes.Data).To(Equal(map[string]string{"nodes": strings.Join(seedNodes, "\n") + "\n"}))

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	eventually(t, func() error { return get(ctx, svc) }).Should(Succeed())
	expectControlledBy(g, svc, gw)
	g.Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeLoadBalancer))
	g.Expect(svc.Spec.Ports).To(ContainElement(And(HaveField("Name", "ws"), HaveField("Port", int32(80)))))
	g.Expect(svc.Spec.Selector).To(Equal(dep.Spec.Selector.MatchLabels))
	g.Expect(svc.Spec.Ports).To(HaveLen(1), "the client Service carries WebSocket traffic only")

	metricsSvc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat-metrics"}}
	eventually(t, func() error { return get(ctx, metricsSvc) }).Should(Succeed())
	expectControlledBy(g, metricsSvc, gw)
	g.Expect(metricsSvc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone), "headless")
	g.Expect(metricsSvc.Spec.Ports).To(ConsistOf(And(HaveField("Name", "metrics"), HaveField("Port", int32(9090)))))
	g.Expect(metricsSvc.Spec.Selector).To(Equal(dep.Spec.Selector.MatchLabels))

	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	eventually(t, func() error { return get(ctx, hpa) }).Should(Succeed())
	expectControlledBy(g, hpa, gw)
	g.Expect(hpa.Spec.MinReplicas).To(HaveValue(Equal(int32(3))))
	g.Expect(hpa.Spec.MaxReplicas).To(Equal(int32(20)))
	g.Expect(hpa.Spec.Metrics).To(HaveLen(2))
	g.Expect(hpa.Spec.ScaleTargetRef.Name).To(Equal("chat"))

	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	eventually(t, func() error { return get(ctx, pdb) }).Should(Succeed())
	expectControlledBy(g, pdb, gw)
	g.Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))

	// Status: what `kubectl get pgw` shows, and why it is not Ready (nothing
	// answers on the seed ports, so Redis is not ready).
	eventually(t, func(g Gomega) {
		g.Expect(get(ctx, gw)).To(Succeed())
		g.Expect(gw.Status.ObservedGeneration).To(Equal(gw.Generation))
		g.Expect(gw.Status.Endpoint).To(Equal("ws://chat." + ns + ".svc:80"))
		g.Expect(gw.Status.Selector).To(Equal("app.kubernetes.io/instance=chat,app.kubernetes.io/name=presence-gateway"))
		g.Expect(gw.Status.RedisNodes).To(Equal(seedNodes))
		var types []string
		for _, c := range gw.Status.Conditions {
			g.Expect(c.ObservedGeneration).To(Equal(gw.Generation), c.Type)
			types = append(types, c.Type)
		}
		g.Expect(types).To(ConsistOf(presencev1alpha1.ConditionReady, presencev1alpha1.ConditionAvailable, presencev1alpha1.ConditionProgressing,
			presencev1alpha1.ConditionRedisReady, presencev1alpha1.ConditionDegraded, presencev1alpha1.ConditionAutoscaling), "spec.autoscaling is set")
	}).Should(Succeed())
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionRedisReady)).Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotReady))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotReady))
	eventually(t, func(g Gomega) []string {
		var reasons []string
		for _, e := range eventsFor(g, ns, "chat") {
			reasons = append(reasons, e.Reason)
		}
		return reasons
	}).Should(ContainElement("Created"))
}

func expectControlledBy(g Gomega, obj client.Object, gw *presencev1alpha1.PresenceGateway) {
	owner := metav1.GetControllerOf(obj)
	g.ExpectWithOffset(1, owner).NotTo(BeNil(), "%T %s has no controller owner reference", obj, obj.GetName())
	g.ExpectWithOffset(1, owner.UID).To(Equal(gw.UID))
	g.ExpectWithOffset(1, owner.Kind).To(Equal("PresenceGateway"))
	g.ExpectWithOffset(1, owner.BlockOwnerDeletion).To(HaveValue(BeTrue()))
}

func TestGatewayReadyOnRealRedisCluster(t *testing.T) {
	requireRedisCluster(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "real", testRedisNodes, "")
	createGateway(t, ns, "chat", "real", nil)

	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionRedisReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonRedisClusterReady))
	// No Deployment controller in envtest: the rollout is still "in progress".
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRolloutInProgress))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionProgressing)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonRolloutInProgress))

	dep := waitDeployment(t, ns, "chat")
	markRolledOut(t, dep)
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReady))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionAvailable)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonMinimumReplicasAvailable))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionProgressing)).Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRolloutComplete))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionDegraded)).Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonAsExpected))
	gw := &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	NewWithT(t).Expect(get(ctx, gw)).To(Succeed())
	NewWithT(t).Expect(gw.Status.ReadyReplicas).To(Equal(int32(2)))
	NewWithT(t).Expect(gw.Status.Replicas).To(Equal(int32(2)))
}

func TestDriftIsCorrected(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Replicas = ptr.To[int32](3) })
	dep := waitDeployment(t, ns, "chat")

	// Someone edits the Deployment: another image, REDIS_NODES_FILE gone, an env
	// var of their own added, other size. What the operator owns comes back.
	eventually(t, func() error {
		if err := get(ctx, dep); err != nil {
			return err
		}
		c := &dep.Spec.Template.Spec.Containers[0]
		c.Image = "example.test/someone-else:latest"
		var env []corev1.EnvVar
		for _, e := range c.Env {
			if e.Name != "REDIS_NODES_FILE" {
				env = append(env, e)
			}
		}
		c.Env = append(env, corev1.EnvVar{Name: "DEBUG", Value: "1"})
		dep.Spec.Replicas = ptr.To[int32](9)
		return k8sClient.Update(ctx, dep)
	}).Should(Succeed())
	eventually(t, func(g Gomega) {
		g.Expect(get(ctx, dep)).To(Succeed())
		g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(testGatewayImage))
		g.Expect(envValue(dep, "REDIS_NODES_FILE")).To(Equal("/etc/presence/redis-nodes/nodes"))
		// Server-side apply: what another manager set is theirs, as the
		// HPA's replicas and `kubectl rollout restart`'s annotation are.
		_, kept := envOf(dep, "DEBUG")
		g.Expect(kept).To(BeTrue(), "an env var another manager added stays")
		g.Expect(*dep.Spec.Replicas).To(Equal(int32(3)))
	}).Should(Succeed())

	// And the Service.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	eventually(t, func() error {
		if err := get(ctx, svc); err != nil {
			return err
		}
		svc.Spec.Selector = map[string]string{"app": "other"}
		return k8sClient.Update(ctx, svc)
	}).Should(Succeed())
	eventually(t, func(g Gomega) map[string]string {
		g.Expect(get(ctx, svc)).To(Succeed())
		return svc.Spec.Selector
	}).Should(Equal(map[string]string{"app.kubernetes.io/name": "presence-gateway", "app.kubernetes.io/instance": "chat"}))

	// A steady state writes nothing: the resourceVersions stay put.
	g.Expect(get(ctx, dep)).To(Succeed())
	rv := dep.ResourceVersion
	NewWithT(t).Consistently(func(g Gomega) string {
		g.Expect(get(ctx, dep)).To(Succeed())
		return dep.ResourceVersion
	}).WithTimeout(2 * testCheckInterval).WithPolling(200 * time.Millisecond).Should(Equal(rv))
}

func TestMissingRedisCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createGateway(t, ns, "chat", "nowhere", nil)

	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotFound),
		HaveField("Message", ContainSubstring(`RedisCluster "nowhere"`))))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionRedisReady)).Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotFound))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionDegraded)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonRedisClusterNotFound))
	eventually(t, func(g Gomega) []corev1.EventSource {
		var warnings []corev1.EventSource
		for _, e := range eventsFor(g, ns, "chat") {
			if e.Type == corev1.EventTypeWarning && e.Reason == presencev1alpha1.ReasonRedisClusterNotFound {
				warnings = append(warnings, corev1.EventSource{Component: e.ReportingController})
			}
		}
		return warnings
	}).ShouldNot(BeEmpty())
	err := get(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no Deployment without Redis, got %v", err)

	// Creating the RedisCluster is enough: the watch maps it back.
	createRedisCluster(t, ns, "nowhere", seedNodes, "")
	waitDeployment(t, ns, "chat")
	g.Expect(seedsOf(t, ns, "chat")).To(Equal(strings.Join(seedNodes, ",")))
}

func TestMissingRedisSecret(t *testing.T) {
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "not-yet")
	createGateway(t, ns, "chat", "presence-redis", nil)
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonSecretNotFound))
	createSecret(t, ns, "not-yet", map[string]string{"password": "pw"})
	waitDeployment(t, ns, "chat")
}

func TestScaleSubresource(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	gw := createGateway(t, ns, "chat", "presence-redis", nil)
	dep := waitDeployment(t, ns, "chat")
	g.Expect(*dep.Spec.Replicas).To(Equal(int32(2)), "spec.replicas defaults to 2")

	// kubectl scale pgw/chat --replicas=5. The reconciler writes status
	// meanwhile, so the scale read may be stale by the time it is written:
	// read again on a conflict, as kubectl does.
	scale := &autoscalingv1.Scale{}
	g.Expect(k8sClient.SubResource("scale").Get(ctx, gw, scale)).To(Succeed())
	g.Expect(scale.Spec.Replicas).To(Equal(int32(2)))
	scaleTo(t, gw, 5)
	eventually(t, func(g Gomega) int32 {
		g.Expect(get(ctx, dep)).To(Succeed())
		return *dep.Spec.Replicas
	}).Should(Equal(int32(5)))

	// The scale subresource reports the pods the Deployment has and their selector.
	markRolledOut(t, dep)
	eventually(t, func(g Gomega) {
		g.Expect(k8sClient.SubResource("scale").Get(ctx, gw, scale)).To(Succeed())
		g.Expect(scale.Status.Replicas).To(Equal(int32(5)))
		g.Expect(scale.Status.Selector).To(Equal("app.kubernetes.io/instance=chat,app.kubernetes.io/name=presence-gateway"))
	}).Should(Succeed())

	// Scaled down to one pod, the PDB goes: it would only block node drains.
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	g.Expect(get(ctx, pdb)).To(Succeed())
	scaleTo(t, gw, 1)
	eventually(t, func() bool { return apierrors.IsNotFound(get(ctx, pdb)) }).Should(BeTrue())
}

func TestHPAOwnsReplicas(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	gw := createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 10}
	})
	dep := waitDeployment(t, ns, "chat")
	g.Expect(*dep.Spec.Replicas).To(Equal(int32(2)), "created at the default minReplicas")

	// The HPA scales the Deployment through its scale subresource.
	scaleTo(t, dep, 7)

	// A spec change re-renders the template; the live size stays the HPA's.
	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Presence.TTL = &metav1.Duration{Duration: 90 * time.Second}
	})
	eventually(t, func(g Gomega) string {
		g.Expect(get(ctx, dep)).To(Succeed())
		return envValue(dep, "PRESENCE_TTL")
	}).Should(Equal("1m30s"))
	g.Expect(*dep.Spec.Replicas).To(Equal(int32(7)), "the operator reset the HPA's replica count")

	// Autoscaling off: the HPA goes and spec.replicas (default 2) rules again.
	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = nil
	})
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	eventually(t, func() bool { return apierrors.IsNotFound(get(ctx, hpa)) }).Should(BeTrue())
	eventually(t, func(g Gomega) int32 {
		g.Expect(get(ctx, dep)).To(Succeed())
		return *dep.Spec.Replicas
	}).Should(Equal(int32(2)))
}

// envtest runs no garbage collector, so deletion is checked the way the
// collector works: every owned object has a controller owner reference to
// the PresenceGateway (with blockOwnerDeletion), and the PresenceGateway
// carries no finalizer that could keep it.
func TestDeletionLeavesNothingBehind(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	gw := createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 4}
	})
	dep := waitDeployment(t, ns, "chat")
	g.Expect(get(ctx, gw)).To(Succeed())
	g.Expect(gw.Finalizers).To(BeEmpty())

	metricsSvc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat-metrics"}}
	owned := []client.Object{dep, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}}
	for _, obj := range owned[1:] {
		obj.SetNamespace(ns)
		obj.SetName("chat")
	}
	owned = append(owned, metricsSvc)
	for _, obj := range owned[1:] {
		eventually(t, func() error { return get(ctx, obj) }).Should(Succeed())
	}
	// Everything in the namespace carrying the gateway's labels is owned by it.
	for list, n := range map[client.ObjectList]int{&appsv1.DeploymentList{}: 1, &corev1.ServiceList{}: 2, &autoscalingv2.HorizontalPodAutoscalerList{}: 1, &policyv1.PodDisruptionBudgetList{}: 1} {
		g.Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		items, err := metaItems(list)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(items).To(HaveLen(n), "%T", list)
		for _, item := range items {
			expectControlledBy(g, item, gw)
		}
	}

	g.Expect(k8sClient.Delete(ctx, gw)).To(Succeed())
	eventually(t, func() bool { return apierrors.IsNotFound(get(ctx, gw)) }).Should(BeTrue())
	// With the owner gone, the garbage collector deletes each owned object:
	// their only owner reference points at the deleted UID.
	for _, obj := range owned {
		g.Expect(get(ctx, obj)).To(Succeed())
		g.Expect(obj.GetOwnerReferences()).To(HaveLen(1))
		g.Expect(obj.GetOwnerReferences()[0].UID).To(Equal(gw.UID))
	}
}

// TestMissingJWTSecret: a missing spec.auth.jwtSecretRef Secret has its own
// reason, and RedisReady keeps describing Redis.
func TestMissingJWTSecret(t *testing.T) {
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Auth = &presencev1alpha1.AuthSpec{JWTSecretRef: &presencev1alpha1.SecretKeyRef{Name: "jwt"}}
	})
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonJWTSecretNotFound),
		HaveField("Message", ContainSubstring("spec.auth.jwtSecretRef"))))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionRedisReady)).Should(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotReady)) // nothing answers on the seed ports
	createSecret(t, ns, "jwt", map[string]string{"secret": "s"})
	waitDeployment(t, ns, "chat")
}

// TestJWTPublicKeyRef: a missing spec.auth.jwtPublicKeyRef ConfigMap (which
// no watch reports: the operator caches only its own) blocks the gateway
// with JWTKeyNotFound until it appears; then the key is mounted and given as
// AUTH_JWT_PUBLIC_KEY_FILE. A Secret that lacks the key named is reported
// the same way.
func TestJWTPublicKeyRef(t *testing.T) {
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Auth = &presencev1alpha1.AuthSpec{
			JWTPublicKeyRef: &presencev1alpha1.KeySourceRef{ConfigMapKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "idp", Key: "rs256.pem"}},
			Issuer:          "https://idp.example.com/",
		}
	})
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonJWTKeyNotFound),
		HaveField("Message", ContainSubstring(`ConfigMap "idp" (spec.auth.jwtPublicKeyRef.configMapKeyRef) not found`))))
	NewWithT(t).Expect(k8sClient.Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp"},
		Data:       map[string]string{"rs256.pem": "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n"},
	})).To(Succeed())
	dep := waitDeployment(t, ns, "chat")
	env := map[string]string{}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	g := NewWithT(t)
	g.Expect(env).To(HaveKeyWithValue("AUTH_JWT_PUBLIC_KEY_FILE", "/etc/presence/jwt-public-key/key.pem"))
	g.Expect(env).To(HaveKeyWithValue("AUTH_JWT_ISSUER", "https://idp.example.com/"))
	g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.ConfigMap.Name", "idp")))

	createSecret(t, ns, "idp-secret", map[string]string{"other.pem": "x"})
	createGateway(t, ns, "chat2", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Auth = &presencev1alpha1.AuthSpec{
			JWTPublicKeyRef: &presencev1alpha1.KeySourceRef{SecretKeyRef: &presencev1alpha1.ObjectKeyRef{Name: "idp-secret", Key: "es256.pem"}},
		}
	})
	eventually(t, gatewayCondition(ns, "chat2", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonJWTKeyNotFound),
		HaveField("Message", ContainSubstring(`has no key "es256.pem"`))))
}

// TestIngressAndEndpoints: spec.ingress creates an Ingress to the client
// Service's ws port, status.endpoints lists its wss:// URL and, once the
// load balancer has an address, the LoadBalancer Service's; removing
// spec.ingress deletes the Ingress.
func TestIngressAndEndpoints(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	gw := createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
		gw.Spec.Ingress = &presencev1alpha1.IngressSpec{ClassName: ptr.To("nginx"), Host: "presence.example.com", TLSSecretName: "presence-tls"}
	})
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	eventually(t, func() error { return get(ctx, ing) }).Should(Succeed())
	g := NewWithT(t)
	g.Expect(ing.Spec.Rules).To(ConsistOf(HaveField("Host", "presence.example.com")))
	g.Expect(ing.Spec.TLS).To(ConsistOf(HaveField("SecretName", "presence-tls")))
	g.Expect(metav1.GetControllerOf(ing)).To(HaveField("UID", gw.UID))

	endpoints := func(g Gomega) []presencev1alpha1.GatewayEndpoint {
		cur := &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
		g.Expect(get(ctx, cur)).To(Succeed())
		return cur.Status.Endpoints
	}
	inCluster := presencev1alpha1.GatewayEndpoint{Scope: "InCluster", Via: "Service", URL: "ws://chat." + ns + ".svc:80"}
	viaIngress := presencev1alpha1.GatewayEndpoint{Scope: "External", Via: "Ingress", URL: "wss://presence.example.com/"}
	eventually(t, endpoints).Should(Equal([]presencev1alpha1.GatewayEndpoint{inCluster, viaIngress}))

	// The cloud's load balancer controller publishes an address.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := get(ctx, svc); err != nil {
			return err
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.7"}}
		return k8sClient.Status().Update(ctx, svc)
	})).To(Succeed())
	eventually(t, endpoints).Should(Equal([]presencev1alpha1.GatewayEndpoint{inCluster, viaIngress,
		{Scope: "External", Via: "LoadBalancer", URL: "ws://198.51.100.7:80/"}}))

	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Ingress = nil })
	eventually(t, func() bool { return apierrors.IsNotFound(get(ctx, ing)) }).Should(BeTrue(), "the Ingress is deleted with spec.ingress")
	eventually(t, endpoints).Should(Equal([]presencev1alpha1.GatewayEndpoint{inCluster,
		{Scope: "External", Via: "LoadBalancer", URL: "ws://198.51.100.7:80/"}}))
}

// TestHTTPRoute: spec.httpRoute creates an HTTPRoute (the Gateway API's own
// CRDs, from its Go module) to the client Service, status.endpoints lists
// its hostnames with wss:// when the parent Gateway's listener is HTTPS,
// and removing spec.httpRoute deletes the route.
func TestHTTPRoute(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	g := NewWithT(t)
	g.Expect(k8sClient.Create(ctx, &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge"},
		Spec: gatewayv1.GatewaySpec{GatewayClassName: "example", Listeners: []gatewayv1.Listener{
			{Name: "http", Port: 80, Protocol: gatewayv1.HTTPProtocolType},
			{Name: "https", Port: 443, Protocol: gatewayv1.HTTPSProtocolType, TLS: &gatewayv1.ListenerTLSConfig{
				CertificateRefs: []gatewayv1.SecretObjectReference{{Name: "edge-tls"}}}},
		}},
	})).To(Succeed())
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	gw := createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.HTTPRoute = &presencev1alpha1.HTTPRouteSpec{
			ParentRefs: []presencev1alpha1.RouteParentRef{{Name: "edge", SectionName: "https"}},
			Hostnames:  []string{"presence.example.com"},
		}
	})
	route := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	eventually(t, func() error { return get(ctx, route) }).Should(Succeed())
	g.Expect(route.Spec.ParentRefs).To(ConsistOf(And(
		HaveField("Name", gatewayv1.ObjectName("edge")), HaveField("SectionName", ptr.To(gatewayv1.SectionName("https"))))))
	g.Expect(route.Spec.Hostnames).To(Equal([]gatewayv1.Hostname{"presence.example.com"}))
	g.Expect(route.Spec.Rules).To(HaveLen(1))
	g.Expect(route.Spec.Rules[0].BackendRefs).To(ConsistOf(And(
		HaveField("Name", gatewayv1.ObjectName("chat")), HaveField("Port", ptr.To(gatewayv1.PortNumber(80))))))
	g.Expect(metav1.GetControllerOf(route)).To(HaveField("UID", gw.UID))

	endpoints := func(g Gomega) []presencev1alpha1.GatewayEndpoint {
		cur := &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
		g.Expect(get(ctx, cur)).To(Succeed())
		return cur.Status.Endpoints
	}
	eventually(t, endpoints).Should(ContainElement(presencev1alpha1.GatewayEndpoint{
		Scope: "External", Via: "HTTPRoute", URL: "wss://presence.example.com/"}))

	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.HTTPRoute = nil })
	eventually(t, func() bool { return apierrors.IsNotFound(get(ctx, route)) }).Should(BeTrue(), "the HTTPRoute is deleted with spec.httpRoute")
	eventually(t, endpoints).Should(HaveLen(1))
}

// TestHTTPRouteWithoutGatewayAPI: on a cluster that did not serve HTTPRoute
// when the operator started, spec.httpRoute makes the gateway Degraded with
// a message that says what to install; nothing is sent to the API server.
func TestHTTPRouteWithoutGatewayAPI(t *testing.T) {
	r := &PresenceGatewayReconciler{gatewayAPI: false}
	gw := &presencev1alpha1.PresenceGateway{Spec: presencev1alpha1.PresenceGatewaySpec{HTTPRoute: &presencev1alpha1.HTTPRouteSpec{
		ParentRefs: []presencev1alpha1.RouteParentRef{{Name: "edge"}},
	}}}
	obs := &gatewayObservation{}
	g := NewWithT(t)
	g.Expect(r.applyRoute(context.Background(), nil, gw, obs)).To(Succeed())
	g.Expect(obs.exposure).NotTo(BeNil())
	g.Expect(obs.exposure.status).To(Equal(metav1.ConditionTrue))
	g.Expect(obs.exposure.reason).To(Equal(presencev1alpha1.ReasonGatewayAPIMissing))
	g.Expect(obs.exposure.message).To(ContainSubstring("install its CRDs and restart the operator"))
	obs.redis = conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonRedisClusterReady, "ok"}
	st := computeStatus(gw, obs)
	g.Expect(meta.FindStatusCondition(st.Conditions, presencev1alpha1.ConditionDegraded)).To(And(
		HaveField("Status", metav1.ConditionTrue), HaveField("Reason", presencev1alpha1.ReasonGatewayAPIMissing)))
}

// TestOpenShiftLeavesIDsToTheSCC: an operator started on a cluster that
// serves security.openshift.io (here its SecurityContextConstraints kind,
// installed as a CRD so that discovery finds the group) renders gateway pods
// without runAsUser, runAsGroup or fsGroup, which the restricted SCC
// assigns; elsewhere it pins 65532.
func TestOpenShiftLeavesIDsToTheSCC(t *testing.T) {
	g := NewWithT(t)
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "securitycontextconstraints.security.openshift.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "security.openshift.io", Scope: apiextensionsv1.ClusterScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "securitycontextconstraints", Singular: "securitycontextconstraints",
				Kind: "SecurityContextConstraints", ListKind: "SecurityContextConstraintsList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true)}}}},
		},
	}
	_, err := envtest.InstallCRDs(testConfig, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}})
	g.Expect(err).NotTo(HaveOccurred())
	restartOperator(t, suiteOperator)
	// Runs before restartOperator's cleanup starts the suite's operator
	// again (cleanups run last first), so that one sees no OpenShift.
	t.Cleanup(func() {
		NewWithT(t).Expect(envtest.UninstallCRDs(testConfig, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}})).To(Succeed())
	})

	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	createGateway(t, ns, "chat", "presence-redis", nil)
	pod := waitDeployment(t, ns, "chat").Spec.Template.Spec
	g.Expect(pod.SecurityContext.FSGroup).To(BeNil())
	g.Expect(pod.Containers[0].SecurityContext.RunAsUser).To(BeNil())
	g.Expect(pod.Containers[0].SecurityContext.RunAsGroup).To(BeNil())
	g.Expect(pod.Containers[0].SecurityContext.RunAsNonRoot).To(Equal(ptr.To(true)))
}

// TestPodMonitor: spec.monitoring.podMonitor creates a PodMonitor (the CRD
// of prometheus-operator's own release) that selects the gateway pods'
// metrics port, with the user's labels beside the operator's; removing it
// deletes the PodMonitor.
func TestPodMonitor(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "presence-redis", seedNodes, "")
	gw := createGateway(t, ns, "chat", "presence-redis", func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Monitoring = &presencev1alpha1.MonitoringSpec{PodMonitor: &presencev1alpha1.PodMonitorSpec{
			Interval: "15s", Labels: map[string]string{"release": "kube-prometheus-stack"}}}
	})
	pm := &monitoringv1.PodMonitor{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat"}}
	eventually(t, func() error { return get(ctx, pm) }).Should(Succeed())
	g := NewWithT(t)
	g.Expect(pm.Labels).To(HaveKeyWithValue("release", "kube-prometheus-stack"))
	g.Expect(pm.Spec.Selector.MatchLabels).To(Equal(gwspecs.SelectorLabels(gw)))
	g.Expect(pm.Spec.PodMetricsEndpoints).To(ConsistOf(And(
		HaveField("Port", ptr.To("metrics")), HaveField("Path", "/metrics"), HaveField("Interval", monitoringv1.Duration("15s")))))
	g.Expect(metav1.GetControllerOf(pm)).To(HaveField("UID", gw.UID))

	// A steady PodMonitor is not written again on later reconciles.
	rv := pm.ResourceVersion
	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.PodLabels = map[string]string{"touch": "1"} })
	waitDeploymentLabel(t, ns, "chat", "touch")
	g.Expect(get(ctx, pm)).To(Succeed())
	g.Expect(pm.ResourceVersion).To(Equal(rv), "nothing in the PodMonitor changed, so nothing was written")

	editGateway(t, gw, func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Monitoring = nil })
	eventually(t, func() bool { return apierrors.IsNotFound(get(ctx, pm)) }).Should(BeTrue(), "the PodMonitor is deleted with spec.monitoring.podMonitor")
}

// waitDeploymentLabel waits for the gateway Deployment's pod template to
// carry label key.
func waitDeploymentLabel(t *testing.T, ns, name, key string) {
	t.Helper()
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	eventually(t, func(g Gomega) map[string]string {
		g.Expect(get(context.Background(), dep)).To(Succeed())
		return dep.Spec.Template.Labels
	}).Should(HaveKey(key))
}

// TestPodMonitorWithoutPrometheusOperator: without prometheus-operator at
// start, spec.monitoring.podMonitor makes the gateway Degraded, saying what
// to install.
func TestPodMonitorWithoutPrometheusOperator(t *testing.T) {
	r := &PresenceGatewayReconciler{podMonitors: false}
	gw := &presencev1alpha1.PresenceGateway{Spec: presencev1alpha1.PresenceGatewaySpec{
		Monitoring: &presencev1alpha1.MonitoringSpec{PodMonitor: &presencev1alpha1.PodMonitorSpec{}}}}
	obs := &gatewayObservation{}
	g := NewWithT(t)
	g.Expect(r.applyPodMonitor(context.Background(), nil, gw, obs)).To(Succeed())
	g.Expect(obs.exposure).NotTo(BeNil())
	g.Expect(obs.exposure.reason).To(Equal(presencev1alpha1.ReasonPrometheusOperatorMissing))
	g.Expect(obs.exposure.message).To(ContainSubstring("monitoring.coreos.com/v1"))
}

// scaleTo sets obj's scale subresource to n replicas, reading it again when
// the write loses an optimistic-concurrency race.
func scaleTo(t *testing.T, obj client.Object, n int32) {
	t.Helper()
	ctx := context.Background()
	NewWithT(t).Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale := &autoscalingv1.Scale{}
		if err := k8sClient.SubResource("scale").Get(ctx, obj, scale); err != nil {
			return err
		}
		scale.Spec.Replicas = n
		return k8sClient.SubResource("scale").Update(ctx, obj, client.WithSubResourceBody(scale))
	})).To(Succeed())
}
