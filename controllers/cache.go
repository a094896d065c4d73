package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ManagedByLabel and ManagedByValue mark every object the operator creates
// for a PresenceGateway. The manager's cache holds only the Deployments,
// Services, HorizontalPodAutoscalers, PodDisruptionBudgets and Ingresses that carry
// them, so that its memory grows with the gateways, not with the cluster.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "presence-operator"
)

// ownedObjectsSelector selects the objects the operator created.
var ownedObjectsSelector = labels.SelectorFromSet(labels.Set{ManagedByLabel: ManagedByValue})

// CacheOptions bounds what the manager caches: the owned kinds by the
// operator's label, and only the namespaces in watchNamespaces (all when
// empty). managedFields stay in the cache: the server-side apply path reads
// the operator's own entry to tell whether an apply would change anything
// (presencegateway_apply.go), so stripping them would make every reconcile
// write.
//
// HTTPRoutes (when the cluster serves the Gateway API) are cached whole: a
// ByObject entry makes cache.New resolve its kind at start, which fails on
// a cluster without the Gateway API, and a cluster's HTTPRoutes are few.
//
// Secrets are not cached at all: the reconcilers read the few Secrets they
// reference from the API server (ClientOptions) and watch Secrets as
// metadata only (builder.OnlyMetadata). A cached read of a kind without an
// informer fails (ReaderFailOnMissingInformer) instead of quietly starting a
// cluster-wide informer for it.
func CacheOptions(watchNamespaces []string) cache.Options {
	owned := cache.ByObject{Label: ownedObjectsSelector}
	opts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}:                     owned,
			&corev1.Service{}:                        owned,
			&corev1.ConfigMap{}:                      owned,
			&autoscalingv2.HorizontalPodAutoscaler{}: owned,
			&policyv1.PodDisruptionBudget{}:          owned,
			&networkingv1.Ingress{}:                  owned,
		},
		ReaderFailOnMissingInformer: true,
	}
	if len(watchNamespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range watchNamespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// ClientOptions makes the manager's client read Secrets from the API server
// rather than from a cache of every Secret in the cluster.
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
}
