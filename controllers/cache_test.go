package controllers

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// plainDeployment is a one-container Deployment with the given labels.
func plainDeployment(ns, name string, labels map[string]string) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	podLabels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.test/c"}}},
			},
		},
	}
}

// TestCacheHoldsOnlyWhatTheOperatorOwns: the manager's cache, which grows
// with what it holds, keeps the Deployments the operator labels and not the
// cluster's others, and holds no Secret at all.
func TestCacheHoldsOnlyWhatTheOperatorOwns(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)

	// Informer events arrive in resourceVersion order: once the labelled
	// Deployment created second is in the cache, the first one would be too
	// if the cache held it.
	unrelated := plainDeployment(ns, "unrelated", map[string]string{"app": "unrelated"})
	g.Expect(k8sClient.Create(ctx, unrelated)).To(Succeed())
	owned := plainDeployment(ns, "owned", map[string]string{ManagedByLabel: ManagedByValue})
	g.Expect(k8sClient.Create(ctx, owned)).To(Succeed())
	eventually(t, func() error {
		return testCache.Get(ctx, client.ObjectKeyFromObject(owned), &appsv1.Deployment{})
	}).Should(Succeed())
	err := testCache.Get(ctx, client.ObjectKeyFromObject(unrelated), &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "an unrelated Deployment is in the cache (err %v)", err)

	// Secrets: no informer of whole Secrets (their data) in the cache; only
	// their metadata is watched.
	s := createSecret(t, ns, "unrelated", map[string]string{"k": "v"})
	err = testCache.Get(ctx, client.ObjectKeyFromObject(s), &corev1.Secret{})
	var notCached *cache.ErrResourceNotCached
	g.Expect(errors.As(err, &notCached)).To(BeTrue(), "the cache holds whole Secrets (Get: %v)", err)
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "Secret"})
	eventually(t, func() error { return testCache.Get(ctx, client.ObjectKeyFromObject(s), meta) }).Should(Succeed())
}

// TestWatchNamespacesBoundTheCache: with --watch-namespaces, the cache
// lists RedisClusters (and everything else) of those namespaces only.
func TestWatchNamespacesBoundTheCache(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watched, other := newNamespace(t), newNamespace(t)
	createRedisCluster(t, watched, "mine", seedNodes, "")
	createRedisCluster(t, other, "theirs", seedNodes, "")

	c, err := cache.New(testConfig, cache.Options{Scheme: testScheme, DefaultNamespaces: CacheOptions([]string{watched}).DefaultNamespaces})
	g.Expect(err).NotTo(HaveOccurred())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	defer func() { cancel(); g.Expect(<-done).To(Succeed()) }()
	g.Expect(c.WaitForCacheSync(ctx)).To(BeTrue())

	var list presencev1alpha1.RedisClusterList
	g.Expect(c.List(ctx, &list)).To(Succeed())
	var names []string
	for _, rc := range list.Items {
		names = append(names, rc.Namespace+"/"+rc.Name)
	}
	g.Expect(names).To(Equal([]string{watched + "/mine"}))
}
