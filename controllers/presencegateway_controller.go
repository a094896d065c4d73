// Package controllers holds the reconcilers of the presence operator.
package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

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
	// at once (--max-concurrent-reconciles-presencegateway, default
	// DefaultPresenceGatewayWorkers); 1 when zero.
	MaxConcurrentReconciles int
	// MaxConcurrentRollouts is how many fleets may roll out a pod template
	// change they did not ask for in their own spec at once
	// (--max-concurrent-rollouts; see presencegateway_rollout.go); no
	// limit when zero.
	MaxConcurrentRollouts int
	// APIReader reads what the manager does not cache: the ConfigMaps of
	// spec.auth.jwtPublicKeyRef and of the RedisCluster's spec.tls.caRef
	// (the cache holds only the operator's own ConfigMaps) and the
	// Gateways spec.httpRoute attaches to.
	// SetupWithManager sets the manager's when nil.
	APIReader client.Reader
	// gatewayAPI is whether the cluster served HTTPRoutes at start.
	gatewayAPI bool
	// openShift is whether the cluster served security.openshift.io at
	// start (see gwspecs.Deps.PlatformAssignsIDs).
	openShift bool
	// podMonitors is whether the cluster served prometheus-operator's
	// PodMonitor at start.
	podMonitors bool
	// keda is whether the cluster served KEDA's ScaledObject at start.
	keda bool
	// UnwatchedRecheck is DefaultUnwatchedRecheck when zero.
	UnwatchedRecheck time.Duration

	rolloutsOnce sync.Once
	rollouts     *rolloutLimiter // see limiter

	// statusWritten holds, per PresenceGateway, the status this process
	// wrote last (a *PresenceGatewayStatus). The operator is the only
	// writer of that status, so it is what the API server holds, while the
	// informer cache may still show the one before: a reconcile that
	// compared with the cache could find "nothing to write" when its
	// result equals the stale status but not the current one, and no
	// event would ever correct it (our status writes trigger nothing).
	statusWritten sync.Map
}

// limiter is the reconciler's rollout limiter, made on first use (so that a
// reconciler built without SetupWithManager, as tests do, has one too).
func (r *PresenceGatewayReconciler) limiter() *rolloutLimiter {
	r.rolloutsOnce.Do(func() { r.rollouts = newRolloutLimiter(r.MaxConcurrentRollouts) })
	return r.rollouts
}

// queuedRequeue is how often a gateway whose rollout waits for a slot is
// looked at again even if no wake-up reached it (the wake-up channel was
// full); a freed slot normally wakes the next in line at once.
const queuedRequeue = time.Minute

// DefaultUnwatchedRecheck is how soon a gateway blocked on a missing object
// that no watch reports (the ConfigMap of spec.auth.jwtPublicKeyRef or of
// its RedisCluster's spec.tls.caRef; the operator caches only its own
// ConfigMaps) is looked at again.
const DefaultUnwatchedRecheck = 30 * time.Second

// +kubebuilder:rbac:groups=presence.presencekit.io,resources=presencegateways,verbs=get;list;watch
// +kubebuilder:rbac:groups=presence.presencekit.io,resources=presencegateways/status,verbs=patch
// +kubebuilder:rbac:groups=presence.presencekit.io,resources=presencegateways/finalizers,verbs=update
// +kubebuilder:rbac:groups=presence.presencekit.io,resources=redisclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways,verbs=get
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=podmonitors,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=keda.sh,resources=scaledobjects,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile reads the PresenceGateway, resolves its RedisCluster and Secrets,
// applies the owned objects, and writes status last.
func (r *PresenceGatewayReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obs := gatewayObservation{}
	defer func() {
		// Whatever happened but a RolloutQueued, gw no longer waits for a
		// rollout slot (it got one, needs none, is blocked, paused or
		// gone); if it was in line, the next one may go.
		if obs.queued == nil && r.limiter().release(req.NamespacedName) {
			r.limiter().wakeWaiting(ctx, r.Client)
		}
	}()
	gw := &presencev1alpha1.PresenceGateway{}
	if err := r.Get(ctx, req.NamespacedName, gw); err != nil {
		// Deleted: the owned objects go with it through their owner references.
		r.statusWritten.Delete(req.NamespacedName)
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !gw.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if written, ok := r.statusWritten.Load(req.NamespacedName); ok {
		gw.Status = *written.(*presencev1alpha1.PresenceGatewayStatus).DeepCopy()
	}
	if isPaused(gw) || findCondition(gw.Status.Conditions, presencev1alpha1.ConditionPaused) != nil {
		// syncPaused may write the status (with an optimistic lock: a stale
		// read is a conflict), and is not recorded: read it from the cache.
		r.statusWritten.Delete(req.NamespacedName)
	}
	if paused, err := syncPaused(ctx, r.Client, gw, &gw.Status.Conditions); paused || err != nil {
		return ctrl.Result{}, err
	}

	deps, redisProblem, jwtProblem, err := r.resolveDeps(ctx, gw)
	if err != nil {
		return ctrl.Result{}, err
	}
	deps.PlatformAssignsIDs = r.openShift
	problem := redisProblem
	if problem == nil {
		problem = jwtProblem
	}
	obs.redis = redisReadiness(deps.Redis, redisProblem)
	if deps.Redis != nil {
		obs.redisNodes = gwspecs.RedisNodes(deps.Redis)
	}

	image := gw.Spec.Image
	if image == "" {
		image = r.DefaultImage
	}
	var conflicts []string
	if problem == nil { // deps are complete only without a problem
		conflicts = gwspecs.TemplateConflicts(gw, deps)
	}
	switch {
	case problem != nil:
		// A missing reference blocks rendering: pods would only crash or
		// hang on a missing Secret volume. Objects created earlier stay.
		obs.blocked = problem
		r.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, problem.reason, "Reconcile", "%s", problem.message)
	case len(conflicts) > 0:
		obs.blocked = &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonInvalidSpec,
			message: strings.Join(conflicts, "; ")}
		r.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, obs.blocked.reason, "Reconcile", "%s", obs.blocked.message)
	case image == "":
		obs.blocked = &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonInvalidSpec,
			message: "spec.image is empty and the operator has no default image (--gateway-image)"}
		r.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, obs.blocked.reason, "Reconcile", "%s", obs.blocked.message)
	default:
		dep, queued, err := r.applyAll(ctx, gw, deps, image, &obs)
		if err != nil {
			if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
				// A race with another writer or with our cache: back to the
				// workqueue, whose rate limiter decides when to read again.
				return ctrl.Result{}, err
			}
			r.Recorder.Eventf(gw, nil, corev1.EventTypeWarning, presencev1alpha1.ReasonReconcileError, "Reconcile", "%v", err)
			obs.blocked = &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonReconcileError, message: err.Error()}
			if serr := r.writeStatus(ctx, gw, &obs); serr != nil {
				return ctrl.Result{}, errors.Join(err, serr)
			}
			return ctrl.Result{}, err
		}
		obs.deployment, obs.deploymentKnown, obs.queued = dep, true, queued
	}
	if err := r.writeStatus(ctx, gw, &obs); err != nil {
		return ctrl.Result{}, err
	}
	if obs.queued != nil {
		return ctrl.Result{RequeueAfter: queuedRequeue}, nil
	}
	if problem != nil && problem.reason == presencev1alpha1.ReasonJWTKeyNotFound && gw.Spec.Auth.JWTPublicKeyRef.ConfigMapKeyRef != nil ||
		redisProblem != nil && caFromConfigMap(deps.Redis) && (redisProblem.reason == presencev1alpha1.ReasonConfigMapNotFound || redisProblem.reason == presencev1alpha1.ReasonInvalidCA) {
		// No watch reports that ConfigMap (the cache holds only the
		// operator's own): look again.
		return ctrl.Result{RequeueAfter: cmp.Or(r.UnwatchedRecheck, DefaultUnwatchedRecheck)}, nil
	}
	return ctrl.Result{}, nil
}

// resolveDeps reads the RedisCluster and the Secrets gw depends on. A missing
// or unusable one is returned as a problem (it is the user's to fix, not an
// error to retry): redisProblem for the RedisCluster and its Secret,
// jwtProblem for spec.auth's Secret. err is for failed API calls.
func (r *PresenceGatewayReconciler) resolveDeps(ctx context.Context, gw *presencev1alpha1.PresenceGateway) (deps gwspecs.Deps, redisProblem, jwtProblem *conditionResult, err error) {
	rc := &presencev1alpha1.RedisCluster{}
	ref := gw.Spec.Redis.ClusterRef.Name
	if err := r.Get(ctx, client.ObjectKey{Namespace: gw.Namespace, Name: ref}, rc); err != nil {
		if apierrors.IsNotFound(err) {
			return deps, &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonRedisClusterNotFound,
				message: fmt.Sprintf("RedisCluster %q (spec.redis.clusterRef.name) not found in namespace %s", ref, gw.Namespace)}, nil, nil
		}
		return deps, nil, nil, fmt.Errorf("get RedisCluster %s: %w", ref, err)
	}
	deps.Redis = rc
	if len(gwspecs.RedisNodes(rc)) == 0 {
		return deps, &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonRedisClusterNotReady,
			message: fmt.Sprintf("RedisCluster %q lists no node yet", ref)}, nil, nil
	}
	if rc.Spec.Auth != nil {
		name := rc.Spec.Auth.SecretRef.Name
		s, problem, err := getSecret(ctx, r.Client, gw.Namespace, name, secretKeyPassword,
			fmt.Sprintf("RedisCluster %q spec.auth.secretRef", ref))
		if problem != nil || err != nil {
			return deps, problem, nil, err
		}
		deps.RedisAuth = s
	}
	if src := caSourceOf(rc); src != nil {
		// The pods mount it: a missing object or key would leave them
		// waiting for the volume.
		if _, problem, err := readCA(ctx, r.Client, r.APIReader, gw.Namespace, src, ref); problem != nil || err != nil {
			return deps, problem, nil, err
		}
	}
	if gw.Spec.Auth != nil && gw.Spec.Auth.JWTSecretRef != nil {
		s, problem, err := getSecret(ctx, r.Client, gw.Namespace, gw.Spec.Auth.JWTSecretRef.Name, gwspecs.JWTSecretKey(gw), "spec.auth.jwtSecretRef")
		if problem != nil && problem.reason == presencev1alpha1.ReasonSecretNotFound {
			problem.reason = presencev1alpha1.ReasonJWTSecretNotFound
		}
		if problem != nil || err != nil {
			return deps, nil, problem, err
		}
		deps.JWT = s
	}
	if gw.Spec.Auth != nil && gw.Spec.Auth.JWTPublicKeyRef != nil {
		problem, err := r.checkPublicKey(ctx, gw.Namespace, gw.Spec.Auth.JWTPublicKeyRef)
		if problem != nil || err != nil {
			return deps, nil, problem, err
		}
	}
	return deps, nil, nil, nil
}

// checkPublicKey checks that the Secret or ConfigMap key of
// spec.auth.jwtPublicKeyRef exists: the pods could not start without it.
// Its content is the gateway's to judge (it logs and keeps the last good
// keys on a bad file).
func (r *PresenceGatewayReconciler) checkPublicKey(ctx context.Context, namespace string, ref *presencev1alpha1.KeySourceRef) (*conditionResult, error) {
	if s := ref.SecretKeyRef; s != nil {
		_, problem, err := getSecret(ctx, r.Client, namespace, s.Name, s.Key, "spec.auth.jwtPublicKeyRef.secretKeyRef")
		if problem != nil {
			problem.reason = presencev1alpha1.ReasonJWTKeyNotFound
		}
		return problem, err
	}
	c := ref.ConfigMapKeyRef
	problem, err := getConfigMapKey(ctx, r.APIReader, namespace, c.Name, c.Key, "spec.auth.jwtPublicKeyRef.configMapKeyRef")
	if problem != nil {
		problem.reason = presencev1alpha1.ReasonJWTKeyNotFound
	}
	return problem, err
}

// applyAll creates or corrects every owned object and returns the gateway
// Deployment as the API server last returned it (or as cached when it
// needed no write): status is computed from it, never from a cache that may
// not have seen the write yet. When its pod template change waits for a
// rollout slot, the Deployment is left as it is and queued says so.
func (r *PresenceGatewayReconciler) applyAll(ctx context.Context, gw *presencev1alpha1.PresenceGateway, deps gwspecs.Deps, image string, obs *gatewayObservation) (dep *appsv1.Deployment, queued *conditionResult, err error) {
	a := newApplier(r.Client, r.Scheme)
	// Before the Deployment: its pods mount it.
	if err := r.applyOne(ctx, a, gw, gwspecs.RedisNodesConfigMap(gw, deps), &corev1.ConfigMap{}); err != nil {
		return nil, nil, err
	}
	desired := gwspecs.Deployment(gw, deps, image)
	live := &appsv1.Deployment{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(desired), live); err != nil && !apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("get Deployment %s: %w", desired.Name, err)
	}
	cause, queued, err := r.prepareRollout(ctx, gw, deps, desired, live)
	if err != nil {
		return nil, nil, err
	}
	if queued != nil {
		if live.UID != "" {
			dep = live
		}
	} else {
		if dep, err = r.applyDeployment(ctx, a, gw, desired, live); err != nil {
			return nil, nil, err
		}
		if cause == causeShared {
			r.limiter().applied(client.ObjectKeyFromObject(gw), dep.Generation)
		}
	}
	svc := &corev1.Service{}
	if err := r.applyOne(ctx, a, gw, gwspecs.Service(gw), svc); err != nil {
		return nil, nil, err
	}
	obs.service = svc
	ing := gwspecs.Ingress(gw)
	if err := r.applyOrDelete(ctx, a, gw, ing != nil, ing, &networkingv1.Ingress{}); err != nil {
		return nil, nil, err
	}
	if err := r.applyRoute(ctx, a, gw, obs); err != nil {
		return nil, nil, err
	}
	if err := r.applyPodMonitor(ctx, a, gw, obs); err != nil {
		return nil, nil, err
	}
	if err := r.applyScaledObject(ctx, a, gw, obs); err != nil {
		return nil, nil, err
	}
	if err := r.applyOne(ctx, a, gw, gwspecs.MetricsService(gw), &corev1.Service{}); err != nil {
		return nil, nil, err
	}
	hpa := gwspecs.HPA(gw)
	if err := r.applyOrDelete(ctx, a, gw, hpa != nil, hpa, &autoscalingv2.HorizontalPodAutoscaler{}); err != nil {
		return nil, nil, err
	}
	pdb := gwspecs.PDB(gw)
	if err := r.applyOrDelete(ctx, a, gw, pdb != nil, pdb, &policyv1.PodDisruptionBudget{}); err != nil {
		return nil, nil, err
	}
	return dep, queued, nil
}

// applyOrDelete applies desired when want is set; otherwise it deletes the
// object of live's kind named after gw, if gw controls it. It serves the
// optional owned objects, which the spec adds and removes (an HPA, a PDB,
// an Ingress...); desired is not read when want is false.
func (r *PresenceGatewayReconciler) applyOrDelete(ctx context.Context, a *applier, gw *presencev1alpha1.PresenceGateway, want bool, desired, live client.Object) error {
	if want {
		return r.applyOne(ctx, a, gw, desired, live)
	}
	kind, err := a.kind(live)
	if err != nil {
		return err
	}
	return r.deleteOwned(ctx, gw, kind, live)
}

// applyDeployment applies the gateway Deployment; live is the cached one
// (empty when there is none), replaced by what the API server returned.
// With autoscaling the HPA owns spec.replicas: the operator sets it only
// when it creates the Deployment (at minReplicas), then hands it over
// (replicasHandoverManager) and leaves it out of every later apply.
func (r *PresenceGatewayReconciler) applyDeployment(ctx context.Context, a *applier, gw *presencev1alpha1.PresenceGateway, desired, live *appsv1.Deployment) (*appsv1.Deployment, error) {
	autoscaling := gw.Spec.Autoscaling != nil
	if autoscaling {
		if live.UID == "" {
			res, err := a.apply(ctx, gw, desired.DeepCopy(), live, false, true)
			if err != nil {
				return nil, err
			}
			r.recordApply(gw, res, "Deployment", desired.Name)
		}
		owns, err := ownsField(live, FieldManager, "spec", "replicas")
		if err != nil {
			return nil, err
		}
		if owns {
			handover := &unstructured.Unstructured{}
			handover.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("Deployment"))
			handover.SetNamespace(desired.Namespace)
			handover.SetName(desired.Name)
			if err := unstructured.SetNestedField(handover.Object, int64(ptr.Deref(live.Spec.Replicas, 1)), "spec", "replicas"); err != nil {
				return nil, err
			}
			if err := a.applyAs(ctx, handover, replicasHandoverManager, live); err != nil {
				return nil, fmt.Errorf("hand spec.replicas of Deployment %s to the HPA: %w", desired.Name, err)
			}
		}
	}
	res, err := a.apply(ctx, gw, desired, live, autoscaling, true)
	if err != nil {
		return nil, err
	}
	r.recordApply(gw, res, "Deployment", desired.Name)
	return live, nil
}

// applyOne applies one owned object other than the Deployment.
func (r *PresenceGatewayReconciler) applyOne(ctx context.Context, a *applier, gw *presencev1alpha1.PresenceGateway, desired, live client.Object) error {
	res, err := a.apply(ctx, gw, desired, live, false, false)
	if err != nil {
		return err
	}
	kind, _ := a.kind(desired)
	r.recordApply(gw, res, kind, desired.GetName())
	return nil
}

func (r *PresenceGatewayReconciler) recordApply(gw *presencev1alpha1.PresenceGateway, res applyResult, kind, name string) {
	switch res {
	case applyCreated:
		r.Recorder.Eventf(gw, nil, corev1.EventTypeNormal, "Created", "Create", "Created %s %s", kind, name)
	case applyUpdated:
		r.Recorder.Eventf(gw, nil, corev1.EventTypeNormal, "Updated", "Update", "Updated %s %s to match the spec", kind, name)
	}
}

// writeStatus computes the status from what the reconcile observed and
// writes it only when it changed, so a steady state writes nothing. gw's
// status is the one this process wrote last when there is one (see
// statusWritten), else the cached one.
func (r *PresenceGatewayReconciler) writeStatus(ctx context.Context, gw *presencev1alpha1.PresenceGateway, obs *gatewayObservation) error {
	if !obs.deploymentKnown {
		// Nothing was applied this time: the cached Deployment is what
		// there is (and an old one stays reported as it is).
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
	}
	if gw.Spec.Autoscaling != nil {
		hpa := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := r.Get(ctx, client.ObjectKey{Namespace: gw.Namespace, Name: gw.Name}, hpa); err != nil {
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("get HorizontalPodAutoscaler %s: %w", gw.Name, err)
			}
		} else if owner := metav1.GetControllerOf(hpa); owner != nil && owner.UID == gw.UID {
			obs.hpa = hpa
		}
	}
	if obs.service == nil && gw.Spec.Service.Type == corev1.ServiceTypeLoadBalancer {
		// Not applied this time (blocked, or its rollout queued): the
		// cached one still says where the load balancer is.
		svc := &corev1.Service{}
		if err := r.Get(ctx, client.ObjectKey{Namespace: gw.Namespace, Name: gw.Name}, svc); err != nil {
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("get Service %s: %w", gw.Name, err)
			}
		} else if owner := metav1.GetControllerOf(svc); owner != nil && owner.UID == gw.UID {
			obs.service = svc
		}
	}

	if as := gw.Spec.Autoscaling; as != nil && as.KEDA != nil && obs.keda == nil {
		// Not applied this time (blocked): the cached one.
		obs.keda = &kedaObservation{missing: !r.keda}
		if r.keda {
			so := newScaledObject()
			if err := r.Get(ctx, client.ObjectKey{Namespace: gw.Namespace, Name: gw.Name}, so); err != nil {
				if !apierrors.IsNotFound(err) {
					return fmt.Errorf("get ScaledObject %s: %w", gw.Name, err)
				}
			} else if owner := metav1.GetControllerOf(so); owner != nil && owner.UID == gw.UID {
				obs.keda.scaledObject = so
			}
		}
	}
	if gw.Spec.HTTPRoute != nil && r.gatewayAPI {
		tls, err := r.routeTerminatesTLS(ctx, gw)
		if err != nil {
			return err
		}
		obs.routeTLS = tls
	}

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
	r.statusWritten.Store(client.ObjectKeyFromObject(gw), gw.Status.DeepCopy())
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

// SetupWithManager registers the controller, its watches and the cache
// indexes they use.
func (r *PresenceGatewayReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := setupGatewayIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	// The Gateway API is optional: its HTTPRoutes are owned (and watched)
	// only when the cluster serves them at start.
	var err error
	if r.gatewayAPI, err = serves(mgr, gatewayv1.GroupName, "HTTPRoute"); err != nil {
		return err
	}
	if r.openShift, err = serves(mgr, "security.openshift.io", "SecurityContextConstraints"); err != nil {
		return err
	}
	if r.podMonitors, err = serves(mgr, monitoringv1.SchemeGroupVersion.Group, monitoringv1.PodMonitorsKind); err != nil {
		return err
	}
	if r.keda, err = serves(mgr, gwspecs.KEDAGroup, gwspecs.ScaledObjectGVK.Kind); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.gatewayAPI {
		b = b.Owns(&gatewayv1.HTTPRoute{})
	}
	if r.podMonitors {
		b = b.Owns(&monitoringv1.PodMonitor{})
	}
	if r.keda {
		b = b.Owns(newScaledObject())
	}
	return b.
		Named("presencegateway").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1)}).
		// Our own status writes do not change the generation: no self-trigger.
		For(&presencev1alpha1.PresenceGateway{}, builder.WithPredicates(specOrPauseChanged())).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.Service{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}, builder.WithPredicates(hpaChanged())).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.Ingress{}).
		Watches(&presencev1alpha1.RedisCluster{}, handler.EnqueueRequestsFromMapFunc(r.gatewaysForRedisCluster), builder.WithPredicates(RedisClusterChanged())).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.gatewaysForSecret), builder.OnlyMetadata).
		// A freed rollout slot wakes the gateways first in line.
		Watches(&appsv1.Deployment{}, r.slotFreed()).
		WatchesRawSource(source.Channel(r.limiter().wake, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

// applyRoute creates or corrects the HTTPRoute of spec.httpRoute, or
// deletes the one the operator made once the spec drops it. Without
// the Gateway API the gateway is Degraded, not blocked: it still serves in
// the cluster.
func (r *PresenceGatewayReconciler) applyRoute(ctx context.Context, a *applier, gw *presencev1alpha1.PresenceGateway, obs *gatewayObservation) error {
	route := gwspecs.HTTPRoute(gw)
	if !r.gatewayAPI {
		if route != nil {
			obs.exposure = &conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonGatewayAPIMissing,
				"spec.httpRoute needs the Gateway API (gateway.networking.k8s.io/v1 HTTPRoute), which the cluster did not serve when the operator started: install its CRDs and restart the operator, or use spec.ingress"}
		}
		return nil
	}
	return r.applyOrDelete(ctx, a, gw, route != nil, route, &gatewayv1.HTTPRoute{})
}

// routeTerminatesTLS reports whether a listener that spec.httpRoute attaches
// to speaks HTTPS (read from the API server: Gateways are not the
// operator's, so not cached). A Gateway that does not exist yet counts as
// plain HTTP until the next reconcile.
func (r *PresenceGatewayReconciler) routeTerminatesTLS(ctx context.Context, gw *presencev1alpha1.PresenceGateway) (bool, error) {
	for _, ref := range gw.Spec.HTTPRoute.ParentRefs {
		ns := cmp.Or(ref.Namespace, gw.Namespace)
		g := &gatewayv1.Gateway{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, g); err != nil {
			if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
				continue
			}
			return false, fmt.Errorf("get Gateway %s/%s: %w", ns, ref.Name, err)
		}
		for _, l := range g.Spec.Listeners {
			if ref.SectionName != "" && string(l.Name) != ref.SectionName {
				continue
			}
			if l.Protocol == gatewayv1.HTTPSProtocolType {
				return true, nil
			}
		}
	}
	return false, nil
}

// serves reports whether the cluster serves group's kind (in any version)
// now: the optional APIs (Gateway API, prometheus-operator, OpenShift) are
// looked for once, when the operator starts.
func serves(mgr ctrl.Manager, group, kind string) (bool, error) {
	_, err := mgr.GetRESTMapper().RESTMapping(schema.GroupKind{Group: group, Kind: kind})
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	default:
		return false, fmt.Errorf("look for %s %s: %w", group, kind, err)
	}
}

// applyPodMonitor creates or corrects the PodMonitor of
// spec.monitoring.podMonitor, or deletes the one the operator made once the
// spec drops it. Without prometheus-operator the gateway is Degraded.
func (r *PresenceGatewayReconciler) applyPodMonitor(ctx context.Context, a *applier, gw *presencev1alpha1.PresenceGateway, obs *gatewayObservation) error {
	pm := gwspecs.PodMonitor(gw)
	if !r.podMonitors {
		if pm != nil && obs.exposure == nil {
			obs.exposure = &conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonPrometheusOperatorMissing,
				"spec.monitoring.podMonitor needs prometheus-operator's PodMonitor (monitoring.coreos.com/v1), which the cluster did not serve when the operator started: install its CRDs and restart the operator, or scrape the pods by their prometheus.io annotations"}
		}
		return nil
	}
	return r.applyOrDelete(ctx, a, gw, pm != nil, pm, &monitoringv1.PodMonitor{})
}

func newScaledObject() *unstructured.Unstructured {
	so := &unstructured.Unstructured{}
	so.SetGroupVersionKind(gwspecs.ScaledObjectGVK)
	return so
}

// applyScaledObject creates or corrects the KEDA ScaledObject of
// spec.autoscaling.keda, or deletes the one the operator made once the spec
// drops it, and records it for the Autoscaling condition. (The HPA of the
// other mode is deleted by the HPA's own step: gwspecs.HPA is nil in KEDA
// mode.)
func (r *PresenceGatewayReconciler) applyScaledObject(ctx context.Context, a *applier, gw *presencev1alpha1.PresenceGateway, obs *gatewayObservation) error {
	so := gwspecs.ScaledObject(gw)
	if !r.keda {
		if so != nil {
			obs.keda = &kedaObservation{missing: true}
		}
		return nil
	}
	live := newScaledObject()
	if err := r.applyOrDelete(ctx, a, gw, so != nil, so, live); err != nil {
		return err
	}
	if so != nil {
		obs.keda = &kedaObservation{scaledObject: live}
	}
	return nil
}
