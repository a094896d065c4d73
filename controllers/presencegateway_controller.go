// Package controllers holds the reconcilers of the presence operator.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// conflictRetry is how soon a reconcile that lost an optimistic-concurrency
// race reads again.
const conflictRetry = 250 * time.Millisecond

// PresenceGatewayReconciler turns a PresenceGateway into a Deployment,
// Service, HorizontalPodAutoscaler and PodDisruptionBudget of gateway pods
// wired to the referenced RedisCluster, and reports what it did in status.
type PresenceGatewayReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// DefaultImage is the gateway image when spec.image is empty
	// (--gateway-image).
	DefaultImage string
	// MaxConcurrentReconciles is how many PresenceGateways are reconciled
	// at once (--max-concurrent-reconciles-presencegateway); 1 when zero.
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=presence.presencekit.io,resources=presencegateways,verbs=get;list;watch
// +kubebuilder:rbac:groups=presence.presencekit.io,resources=presencegateways/status,verbs=patch
// +kubebuilder:rbac:groups=presence.presencekit.io,resources=presencegateways/finalizers,verbs=update
// +kubebuilder:rbac:groups=presence.presencekit.io,resources=redisclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile reads the PresenceGateway, resolves its RedisCluster and Secrets,
// applies the owned objects, and writes status last.
func (r *PresenceGatewayReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	gw := &presencev1alpha1.PresenceGateway{}
	if err := r.Get(ctx, req.NamespacedName, gw); err != nil {
		// Deleted: the owned objects go with it through their owner references.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !gw.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if paused, err := syncPaused(ctx, r.Client, gw, &gw.Status.Conditions); paused || err != nil {
		return ctrl.Result{}, err
	}

	obs := gatewayObservation{}
	deps, problem, err := r.resolveDeps(ctx, gw)
	if err != nil {
		return ctrl.Result{}, err
	}
	obs.redis = redisReadiness(deps.redis, problem)
	if deps.redis != nil {
		obs.redisNodes = redisNodes(deps.redis)
	}

	image := gw.Spec.Image
	if image == "" {
		image = r.DefaultImage
	}
	switch {
	case problem != nil:
		// A missing reference blocks rendering: pods would only crash or
		// hang on a missing Secret volume. Objects created earlier stay.
		obs.blocked = problem
		r.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, problem.reason, "Reconcile", "%s", problem.message)
	case image == "":
		obs.blocked = &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonInvalidSpec,
			message: "spec.image is empty and the operator has no default image (--gateway-image)"}
		r.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, obs.blocked.reason, "Reconcile", "%s", obs.blocked.message)
	default:
		if err := r.applyAll(ctx, gw, deps, image); err != nil {
			if apierrors.IsConflict(err) {
				// Someone (the HPA, a user) changed an object since we read it:
				// read again rather than overwrite.
				return ctrl.Result{RequeueAfter: conflictRetry}, nil
			}
			r.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, presencev1alpha1.ReasonReconcileError, "Reconcile", "%v", err)
			obs.blocked = &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonReconcileError, message: err.Error()}
			if serr := r.writeStatus(ctx, gw, &obs); serr != nil {
				return ctrl.Result{}, errors.Join(err, serr)
			}
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, r.writeStatus(ctx, gw, &obs)
}

// resolveDeps reads the RedisCluster and the Secrets gw depends on. A missing
// or unusable one is returned as a problem (it is the user's to fix, not an
// error to retry); err is for failed API calls.
func (r *PresenceGatewayReconciler) resolveDeps(ctx context.Context, gw *presencev1alpha1.PresenceGateway) (gatewayDeps, *conditionResult, error) {
	var deps gatewayDeps
	rc := &presencev1alpha1.RedisCluster{}
	ref := gw.Spec.Redis.ClusterRef.Name
	if err := r.Get(ctx, client.ObjectKey{Namespace: gw.Namespace, Name: ref}, rc); err != nil {
		if apierrors.IsNotFound(err) {
			return deps, &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonRedisClusterNotFound,
				message: fmt.Sprintf("RedisCluster %q (spec.redis.clusterRef.name) not found in namespace %s", ref, gw.Namespace)}, nil
		}
		return deps, nil, fmt.Errorf("get RedisCluster %s: %w", ref, err)
	}
	deps.redis = rc
	if len(redisNodes(rc)) == 0 {
		return deps, &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonRedisClusterNotReady,
			message: fmt.Sprintf("RedisCluster %q lists no node yet", ref)}, nil
	}
	if rc.Spec.Auth != nil {
		name := rc.Spec.Auth.SecretRef.Name
		s, problem, err := r.getSecret(ctx, gw.Namespace, name, secretKeyPassword,
			fmt.Sprintf("RedisCluster %q spec.auth.secretRef", ref))
		if problem != nil || err != nil {
			return deps, problem, err
		}
		deps.redisAuth = s
	}
	if gw.Spec.Auth != nil && gw.Spec.Auth.JWTSecretRef != nil {
		s, problem, err := r.getSecret(ctx, gw.Namespace, gw.Spec.Auth.JWTSecretRef.Name, jwtSecretKey(gw), "spec.auth.jwtSecretRef")
		if problem != nil || err != nil {
			return deps, problem, err
		}
		deps.jwt = s
	}
	return deps, nil, nil
}

// getSecret reads a Secret that must hold key; field names the reference in
// the messages.
func (r *PresenceGatewayReconciler) getSecret(ctx context.Context, namespace, name, key, field string) (*corev1.Secret, *conditionResult, error) {
	s := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonSecretNotFound,
				message: fmt.Sprintf("Secret %q (%s) not found in namespace %s", name, field, namespace)}, nil
		}
		return nil, nil, fmt.Errorf("get Secret %s: %w", name, err)
	}
	if _, ok := s.Data[key]; !ok {
		return nil, &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonInvalidSecret,
			message: fmt.Sprintf("Secret %q (%s) has no key %q", name, field, key)}, nil
	}
	return s, nil, nil
}

// applyAll creates or corrects every owned object.
func (r *PresenceGatewayReconciler) applyAll(ctx context.Context, gw *presencev1alpha1.PresenceGateway, deps gatewayDeps, image string) error {
	autoscaling := gw.Spec.Autoscaling != nil
	if _, err := applyOwned(ctx, r, gw, "Deployment", desiredDeployment(gw, deps, image), &appsv1.Deployment{}, mergeDeployment(autoscaling)); err != nil {
		return err
	}
	if _, err := applyOwned(ctx, r, gw, "Service", desiredService(gw), &corev1.Service{}, mergeService); err != nil {
		return err
	}
	if hpa := desiredHPA(gw); hpa != nil {
		if _, err := applyOwned(ctx, r, gw, "HorizontalPodAutoscaler", hpa, &autoscalingv2.HorizontalPodAutoscaler{}, mergeHPA); err != nil {
			return err
		}
	} else if err := r.deleteOwned(ctx, gw, "HorizontalPodAutoscaler", &autoscalingv2.HorizontalPodAutoscaler{}); err != nil {
		return err
	}
	if pdb := desiredPDB(gw); pdb != nil {
		if _, err := applyOwned(ctx, r, gw, "PodDisruptionBudget", pdb, &policyv1.PodDisruptionBudget{}, mergePDB); err != nil {
			return err
		}
	} else if err := r.deleteOwned(ctx, gw, "PodDisruptionBudget", &policyv1.PodDisruptionBudget{}); err != nil {
		return err
	}
	return nil
}

func mergeHPA(live, desired *autoscalingv2.HorizontalPodAutoscaler) {
	if !equality.Semantic.DeepDerivative(desired.Spec, live.Spec) || len(desired.Spec.Metrics) != len(live.Spec.Metrics) {
		live.Spec = desired.Spec
	}
}

func mergePDB(live, desired *policyv1.PodDisruptionBudget) {
	if !equality.Semantic.DeepDerivative(desired.Spec, live.Spec) {
		live.Spec = desired.Spec
	}
}

// writeStatus computes the status from what the reconcile observed and
// writes it only when it changed, so a steady state writes nothing.
func (r *PresenceGatewayReconciler) writeStatus(ctx context.Context, gw *presencev1alpha1.PresenceGateway, obs *gatewayObservation) error {
	dep := &appsv1.Deployment{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: gw.Namespace, Name: gw.Name}, dep); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get Deployment %s: %w", gw.Name, err)
		}
		dep = nil
	} else if owner := metav1.GetControllerOf(dep); owner == nil || owner.UID != gw.UID {
		dep = nil
	}
	obs.deployment = dep

	status := computeStatus(gw, obs)
	if equality.Semantic.DeepEqual(status, gw.Status) {
		return nil
	}
	wasReady := isTrue(gw.Status.Conditions, presencev1alpha1.ConditionReady)
	patch := client.MergeFrom(gw.DeepCopy())
	gw.Status = status
	if err := r.Status().Patch(ctx, gw, patch); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	if nowReady := isTrue(status.Conditions, presencev1alpha1.ConditionReady); nowReady != wasReady {
		c := findCondition(status.Conditions, presencev1alpha1.ConditionReady)
		kind := corev1.EventTypeNormal
		if !nowReady {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(gw, nil, kind, c.Reason, "Reconcile", "Ready=%s: %s", c.Status, c.Message)
	}
	log.FromContext(ctx).V(1).Info("status written", "ready", isTrue(status.Conditions, presencev1alpha1.ConditionReady))
	return nil
}

// SetupWithManager registers the controller and its watches. SetupIndexes
// must have been called on mgr first.
func (r *PresenceGatewayReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("presencegateway").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		// Our own status writes do not change the generation: no self-trigger.
		For(&presencev1alpha1.PresenceGateway{}, builder.WithPredicates(specOrPauseChanged())).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Watches(&presencev1alpha1.RedisCluster{}, handler.EnqueueRequestsFromMapFunc(r.gatewaysForRedisCluster), builder.WithPredicates(RedisClusterChanged())).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.gatewaysForSecret), builder.OnlyMetadata).
		Complete(r)
}
