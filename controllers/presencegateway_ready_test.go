package controllers

import (
	"context"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// laggingCache is a client whose reads of one Deployment keep returning the
// object as it was before the reconciler's own write to it, the way an
// informer cache lags behind a write by a few milliseconds. It records the
// PresenceGateway statuses written through it.
type laggingCache struct {
	key      client.ObjectKey
	mu       sync.Mutex
	stale    *appsv1.Deployment // set once the Deployment was written
	statuses []presencev1alpha1.PresenceGatewayStatus
}

func (l *laggingCache) client(t *testing.T) client.Client {
	t.Helper()
	c, err := client.NewWithWatch(testConfig, client.Options{Scheme: testScheme})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	wrote := func(ctx context.Context, c client.WithWatch) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.stale == nil {
			l.stale = &appsv1.Deployment{}
			NewWithT(t).Expect(c.Get(ctx, l.key, l.stale)).To(Succeed())
		}
	}
	isDeployment := func(kind, ns, name string) bool {
		return kind == "Deployment" && ns == l.key.Namespace && name == l.key.Name
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			l.mu.Lock()
			stale := l.stale
			l.mu.Unlock()
			if dep, ok := obj.(*appsv1.Deployment); ok && key == l.key && stale != nil {
				stale.DeepCopyInto(dep)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			wrote(ctx, c) // the object before the write
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if _, ok := obj.(*appsv1.Deployment); ok && client.ObjectKeyFromObject(obj) == l.key {
				wrote(ctx, c)
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			if u, ok := obj.(interface {
				GetKind() string
				GetNamespace() string
				GetName() string
			}); ok && isDeployment(u.GetKind(), u.GetNamespace(), u.GetName()) {
				wrote(ctx, c)
			}
			return c.Apply(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if gw, ok := obj.(*presencev1alpha1.PresenceGateway); ok && sub == "status" {
				l.mu.Lock()
				l.statuses = append(l.statuses, *gw.Status.DeepCopy())
				l.mu.Unlock()
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
}

// TestReadyNeverTrueForAnUnobservedRollout: a reconcile that changes the pod
// template computes Ready from the Deployment its write returned (a new
// generation the Deployment controller has not observed), not from a cache
// that still holds the previous, rolled-out one. Otherwise Ready=True is
// written for the new generation before the rollout has even started, and
// `kubectl wait --for=condition=Ready` returns at once.
func TestReadyNeverTrueForAnUnobservedRollout(t *testing.T) {
	requireRedisCluster(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "real", testRedisNodes, "")
	createGateway(t, ns, "chat", "real", nil)
	markRolledOut(t, waitDeployment(t, ns, "chat"))
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReady))

	// A reconcile whose default image differs from the running one (as
	// after an operator upgrade with a new --gateway-image) changes the
	// template, through a client whose reads lag behind its writes.
	lag := &laggingCache{key: client.ObjectKey{Namespace: ns, Name: "chat"}}
	r := &PresenceGatewayReconciler{Client: lag.client(t), Scheme: testScheme,
		Recorder: events.NewFakeRecorder(100), DefaultImage: "example.test/presence-gateway:next"}
	_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: lag.key})
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(lag.stale).NotTo(BeNil(), "the reconcile wrote the Deployment")
	g.Expect(lag.statuses).NotTo(BeEmpty(), "the reconcile did not report the rollout it started (Ready stayed True)")
	for _, st := range lag.statuses {
		c := meta.FindStatusCondition(st.Conditions, presencev1alpha1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).NotTo(Equal(metav1.ConditionTrue), "Ready=True while the Deployment controller has not seen the new template: %s", c.Message)
		g.Expect(c.Reason).To(Equal(presencev1alpha1.ReasonRolloutInProgress))
	}
}
