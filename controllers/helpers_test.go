package controllers

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// Helpers that make the envtest tests read like what a user does.

func createRedisCluster(t *testing.T, ns, name string, nodes []string, secret string) *presencev1alpha1.RedisCluster {
	t.Helper()
	rc := &presencev1alpha1.RedisCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       presencev1alpha1.RedisClusterSpec{External: &presencev1alpha1.ExternalRedisCluster{Nodes: nodes}},
	}
	if secret != "" {
		rc.Spec.Auth = &presencev1alpha1.RedisAuth{SecretRef: presencev1alpha1.LocalRef{Name: secret}}
	}
	NewWithT(t).Expect(k8sClient.Create(context.Background(), rc)).To(Succeed())
	return rc
}

func createSecret(t *testing.T, ns, name string, data map[string]string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	NewWithT(t).Expect(k8sClient.Create(context.Background(), s)).To(Succeed())
	return s
}

func createGateway(t *testing.T, ns, name, redis string, mutate func(*presencev1alpha1.PresenceGateway)) *presencev1alpha1.PresenceGateway {
	t.Helper()
	gw := &presencev1alpha1.PresenceGateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       presencev1alpha1.PresenceGatewaySpec{Redis: presencev1alpha1.RedisSpec{ClusterRef: presencev1alpha1.LocalRef{Name: redis}}},
	}
	if mutate != nil {
		mutate(gw)
	}
	NewWithT(t).Expect(k8sClient.Create(context.Background(), gw)).To(Succeed())
	return gw
}

// editGateway applies edit to a fresh read of gw and updates it, again on a
// conflict (status writes race with the edit); gw holds the result.
func editGateway(t *testing.T, gw *presencev1alpha1.PresenceGateway, edit func(*presencev1alpha1.PresenceGateway)) {
	t.Helper()
	ctx := context.Background()
	eventually(t, func() error {
		if err := get(ctx, gw); err != nil {
			return err
		}
		edit(gw)
		return k8sClient.Update(ctx, gw)
	}).Should(Succeed())
}

// get reads obj (by its namespace and name) from the API server.
func get(ctx context.Context, obj client.Object) error {
	return k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)
}

// eventually is Eventually with the package's bounded wait.
func eventually(t *testing.T, f any) AsyncAssertion {
	return NewWithT(t).Eventually(f).WithTimeout(waitTimeout).WithPolling(pollEvery)
}

// waitDeployment waits for the gateway Deployment to exist and returns it.
func waitDeployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	eventually(t, func() error { return get(context.Background(), dep) }).Should(Succeed())
	return dep
}

// haveCondition matches a PresenceGateway or RedisCluster condition of the
// current generation with the given status and reason.
func gatewayCondition(ns, name, condType string) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		gw := &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		g.Expect(get(context.Background(), gw)).To(Succeed())
		c := meta.FindStatusCondition(gw.Status.Conditions, condType)
		g.Expect(c).NotTo(BeNil(), "condition %s", condType)
		g.Expect(c.ObservedGeneration).To(Equal(gw.Generation), "condition %s is stale", condType)
		return *c
	}
}

func clusterCondition(ns, name, condType string) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		rc := &presencev1alpha1.RedisCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		g.Expect(get(context.Background(), rc)).To(Succeed())
		c := meta.FindStatusCondition(rc.Status.Conditions, condType)
		g.Expect(c).NotTo(BeNil(), "condition %s", condType)
		g.Expect(c.ObservedGeneration).To(Equal(rc.Generation), "condition %s is stale", condType)
		return *c
	}
}

// statusReason matches a condition's status and reason.
func statusReason(status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(HaveField("Status", status), HaveField("Reason", reason))
}

// envOf returns the gateway container's env var name, and whether it is set.
func envOf(dep *appsv1.Deployment, name string) (corev1.EnvVar, bool) {
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// seedsOf returns the seed nodes in the gateway's ConfigMap, comma-separated
// (what its pods read as REDIS_NODES_FILE), once the ConfigMap exists.
func seedsOf(t *testing.T, ns, gateway string) string {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gateway + "-redis-nodes"}}
	eventually(t, func() error { return get(context.Background(), cm) }).Should(Succeed())
	return strings.Join(strings.Fields(cm.Data["nodes"]), ",")
}

func envValue(dep *appsv1.Deployment, name string) string {
	e, _ := envOf(dep, name)
	return e.Value
}

// markRolledOut plays the Deployment controller, which envtest does not run:
// it reports every pod of the current generation updated and ready.
func markRolledOut(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	ctx := context.Background()
	eventually(t, func() error {
		if err := get(ctx, dep); err != nil {
			return err
		}
		n := ptr.Deref(dep.Spec.Replicas, 1)
		dep.Status = appsv1.DeploymentStatus{
			ObservedGeneration: dep.Generation,
			Replicas:           n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()},
			},
		}
		return k8sClient.Status().Update(ctx, dep)
	}).Should(Succeed())
}

// eventsFor lists the events.k8s.io Events about the object named name.
func eventsFor(g Gomega, ns, name string) []eventsv1.Event {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// metaItems returns the items of a typed list as client.Objects.
func metaItems(list client.ObjectList) ([]client.Object, error) {
	objs, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(client.Object))
	}
	return out, nil
}
