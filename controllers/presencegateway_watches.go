package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

// Cache indexes that map a changed RedisCluster or Secret back to the
// PresenceGateways that reference it, so that a change re-renders exactly
// those. SetupWithManager registers them.
const (
	indexGatewayByRedisCluster = "spec.redis.clusterRef.name"
	indexGatewayByJWTSecret    = "spec.auth.jwtSecretRef.name"
)

// Keys of the Secret a RedisCluster's spec.auth.secretRef names.
const (
	secretKeyUsername = gwspecs.SecretKeyUsername
	secretKeyPassword = gwspecs.SecretKeyPassword
)

// setupGatewayIndexes registers the indexes the PresenceGateway watches use.
// hpaChanged passes the events of an owned HPA that may change what the
// operator does or says: anything but a status update, and status updates
// that change a condition's status or reason (see autoscaling). The HPA
// controller rewrites its status's current metrics every sync; those alone
// wake nothing.
func hpaChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			older, okOld := e.ObjectOld.(*autoscalingv2.HorizontalPodAutoscaler)
			newer, okNew := e.ObjectNew.(*autoscalingv2.HorizontalPodAutoscaler)
			if !okOld || !okNew {
				return true
			}
			a, b := older.DeepCopy(), newer.DeepCopy()
			a.Status, b.Status = autoscalingv2.HorizontalPodAutoscalerStatus{}, autoscalingv2.HorizontalPodAutoscalerStatus{}
			a.ResourceVersion, b.ResourceVersion = "", ""
			a.ManagedFields, b.ManagedFields = nil, nil
			if !equality.Semantic.DeepEqual(a, b) {
				return true
			}
			return hpaConditionKey(older) != hpaConditionKey(newer)
		},
	}
}

// hpaConditionKey is the type, status and reason of each HPA condition. A
// message that changes under the same reason (a metric's error text) waits
// for the next reconcile to reach the Autoscaling condition.
func hpaConditionKey(hpa *autoscalingv2.HorizontalPodAutoscaler) string {
	var b strings.Builder
	for _, c := range hpa.Status.Conditions {
		fmt.Fprintf(&b, "%s=%s/%s;", c.Type, c.Status, c.Reason)
	}
	return b.String()
}

func setupGatewayIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &presencev1alpha1.PresenceGateway{}, indexGatewayByRedisCluster, func(o client.Object) []string {
		return []string{o.(*presencev1alpha1.PresenceGateway).Spec.Redis.ClusterRef.Name}
	}); err != nil {
		return fmt.Errorf("index PresenceGateway by %s: %w", indexGatewayByRedisCluster, err)
	}
	if err := indexer.IndexField(ctx, &presencev1alpha1.PresenceGateway{}, indexGatewayByJWTSecret, func(o client.Object) []string {
		a := o.(*presencev1alpha1.PresenceGateway).Spec.Auth
		if a == nil {
			return nil
		}
		var names []string
		if a.JWTSecretRef != nil {
			names = append(names, a.JWTSecretRef.Name)
		}
		if a.JWTPublicKeyRef != nil && a.JWTPublicKeyRef.SecretKeyRef != nil {
			names = append(names, a.JWTPublicKeyRef.SecretKeyRef.Name)
		}
		return names
	}); err != nil {
		return fmt.Errorf("index PresenceGateway by %s: %w", indexGatewayByJWTSecret, err)
	}
	return nil
}

// gatewaysForRedisCluster maps a RedisCluster to the gateways referencing it.
func (r *PresenceGatewayReconciler) gatewaysForRedisCluster(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.gatewaysBy(ctx, obj.GetNamespace(), indexGatewayByRedisCluster, obj.GetName())
}

// gatewaysForSecret maps a Secret to the gateways that mount it: directly
// (spec.auth.jwtSecretRef, spec.auth.jwtPublicKeyRef.secretKeyRef) or
// through their RedisCluster's spec.auth or spec.tls.caRef.secretKeyRef. The
// RedisClusters of the Secret's namespace are filtered here rather than
// through the RedisCluster controller's index, so that this controller does
// not depend on another one's setup.
func (r *PresenceGatewayReconciler) gatewaysForSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	ns := obj.GetNamespace()
	reqs := r.gatewaysBy(ctx, ns, indexGatewayByJWTSecret, obj.GetName())
	var clusters presencev1alpha1.RedisClusterList
	if err := r.List(ctx, &clusters, client.InNamespace(ns)); err != nil {
		log.FromContext(ctx).Error(err, "list RedisClusters", "namespace", ns)
		return reqs
	}
	for _, rc := range clusters.Items {
		if slices.Contains(secretsOf(&rc), obj.GetName()) {
			reqs = append(reqs, r.gatewaysBy(ctx, ns, indexGatewayByRedisCluster, rc.Name)...)
		}
	}
	return reqs
}

func (r *PresenceGatewayReconciler) gatewaysBy(ctx context.Context, namespace, index, value string) []reconcile.Request {
	var gws presencev1alpha1.PresenceGatewayList
	if err := r.List(ctx, &gws, client.InNamespace(namespace), client.MatchingFields{index: value}); err != nil {
		log.FromContext(ctx).Error(err, "list PresenceGateways", "index", index, "value", value)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(gws.Items))
	for _, gw := range gws.Items {
		reqs = append(reqs, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}})
	}
	return reqs
}
