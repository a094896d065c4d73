package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// Defaults of RedisClusterReconciler.
const (
	DefaultRedisCheckInterval = 30 * time.Second
	DefaultRedisCheckTimeout  = 3 * time.Second
	// DefaultRedisCheckHeartbeat is how old status.lastCheckTime may grow
	// before a check that changed nothing refreshes it.
	DefaultRedisCheckHeartbeat = 5 * time.Minute
	// DefaultRedisClusterWorkers is how many RedisClusters are checked at
	// once: a check waits up to CheckTimeout on a node that does not
	// answer, and the other clusters' checks must not queue behind it.
	DefaultRedisClusterWorkers = 8
	// DefaultPresenceGatewayWorkers is how many PresenceGateways are
	// reconciled at once. A reconcile mostly waits on the API server (five
	// sequential writes), so workers cost almost nothing while they wait:
	// 500 gateways settle within 60 s with 16 workers and 200 QPS, and
	// need 156 s with 2 workers and 50 QPS (docs/benchmarks.md#operator).
	DefaultPresenceGatewayWorkers = 16
	// DefaultKubeAPIQPS and DefaultKubeAPIBurst are the operator's client
	// rate limit towards the API server. Reads come from the informer
	// cache; the limit only paces writes, which the API server's own
	// Priority and Fairness also queues, so it is a guard against a
	// runaway loop rather than the API server's protection.
	DefaultKubeAPIQPS   = 200
	DefaultKubeAPIBurst = 400
)

// RedisClusterReconciler checks each RedisCluster with CLUSTER INFO and
// CLUSTER SHARDS and publishes what it found. It polls on CheckInterval
// (health cannot be watched) and writes status only when the result changed,
// or when status.lastCheckTime is older than CheckHeartbeat.
type RedisClusterReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// CheckInterval is the time between two checks of a cluster.
	CheckInterval time.Duration
	// CheckTimeout bounds one check of one cluster (its seeds are asked
	// concurrently, each under this timeout).
	CheckTimeout time.Duration
	// CheckHeartbeat is how old status.lastCheckTime may grow before a
	// check that found nothing new writes it again.
	CheckHeartbeat time.Duration
	// MaxConcurrentReconciles is how many RedisClusters are reconciled (and
	// checked) at once; DefaultRedisClusterWorkers when zero.
	MaxConcurrentReconciles int
	// APIReader reads what the manager does not cache: the Service of
	// spec.serviceRef and its EndpointSlices, the ConfigMap of
	// spec.tls.caRef (the cache holds only the operator's own ConfigMaps).
	// SetupWithManager sets the manager's when nil.
	APIReader client.Reader
	// now is the clock of status.lastCheckTime (time.Now when nil).
	now func() time.Time
}

// +kubebuilder:rbac:groups=presence.presencekit.io,resources=redisclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=presence.presencekit.io,resources=redisclusters/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,verbs=get
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile checks one RedisCluster and requeues itself for the next check.
func (r *RedisClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rc := &presencev1alpha1.RedisCluster{}
	if err := r.Get(ctx, req.NamespacedName, rc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !rc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	// A paused cluster is not checked; removing the annotation is an
	// update that brings it back.
	if paused, err := syncPaused(ctx, r.Client, rc, &rc.Status.Conditions); paused || err != nil {
		return ctrl.Result{}, err
	}
	next := ctrl.Result{RequeueAfter: r.interval()}

	seeds, problem, err := r.resolveSeeds(ctx, rc)
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem != nil {
		// A Service that appears or gains endpoints is found by the next
		// check.
		return next, r.writeStatus(ctx, rc, seeds, nil, *problem, nil)
	}
	access, problem, err := r.access(ctx, rc)
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem != nil {
		// The Secret watch brings us back when a Secret appears; a CA
		// ConfigMap is read again at the next interval.
		return next, r.writeStatus(ctx, rc, seeds, nil, *problem, nil)
	}

	h := checkCluster(ctx, seeds, access, r.timeout())
	ready, degraded := clusterConditions(seeds, access.username, h)
	return next, r.writeStatus(ctx, rc, seeds, &h, ready, degraded)
}

// clusterConditions turns a check into the Ready and Degraded conditions.
// username names the ACL user in messages ("" is the default user).
func clusterConditions(seeds []string, username string, h clusterHealth) (ready conditionResult, degraded *conditionResult) {
	switch {
	case h.answered == "" && h.authFailed:
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonInvalidSecret,
			"Redis refused the credentials of spec.auth.secretRef: " + seedErrorSummary(seeds, h.seedErrors)}, nil
	case h.answered == "" && h.permissionDenied:
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonInsufficientPermissions,
			"Redis accepted the credentials but their ACL user may not run CLUSTER INFO or CLUSTER SHARDS: " + seedErrorSummary(seeds, h.seedErrors)}, nil
	case h.answered == "" && h.tlsFailed:
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonTLSHandshakeFailed,
			"no seed node completed a TLS handshake (check spec.tls: the CA, serverName, and that the nodes speak TLS on these ports): " +
				seedErrorSummary(seeds, h.seedErrors)}, nil
	case h.answered == "" && h.tooOld != "":
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonRedisVersionUnsupported,
			h.tooOld + " answers CLUSTER INFO but does not know CLUSTER SHARDS: Redis 7 or later is required (the gateways use sharded pub/sub): " +
				seedErrorSummary(seeds, h.seedErrors)}, nil
	case h.answered == "":
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonUnreachable,
			"no seed node answered CLUSTER INFO: " + seedErrorSummary(seeds, h.seedErrors)}, nil
	case h.state != "ok":
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonClusterDown,
			fmt.Sprintf("%s reports cluster_state:%s (%d of %d slots ok)", h.answered, h.state, h.slotsOK, totalSlots)}, nil
	case h.slotsOK < totalSlots:
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonSlotsUncovered,
			fmt.Sprintf("%s reports %d of %d slots ok", h.answered, h.slotsOK, totalSlots)}, nil
	}
	if len(h.missingPerms) > 0 {
		user := username
		if user == "" {
			user = "default"
		}
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonInsufficientPermissions,
			fmt.Sprintf("the ACL user %q may not run what the gateways need: %s", user, strings.Join(h.missingPerms, ", "))}, nil
	}
	ready = conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK,
		fmt.Sprintf("cluster_state:ok, all %d slots covered by %d nodes (%d masters, %d replicas)", totalSlots, len(h.nodes), h.masters, h.replicas)}
	if len(h.seedErrors) > 0 {
		degraded = &conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonSeedsUnreachable,
			"the cluster is ok but some seed nodes did not answer: " + seedErrorSummary(seeds, h.seedErrors)}
	}
	return ready, degraded
}

// access reads what the check needs to reach the nodes as the gateways
// do: the password of spec.auth.secretRef, the ACL user (spec.auth.username
// or the Secret's username key, not both), and the CA of spec.tls.caRef.
func (r *RedisClusterReconciler) access(ctx context.Context, rc *presencev1alpha1.RedisCluster) (redisAccess, *conditionResult, error) {
	var a redisAccess
	if auth := rc.Spec.Auth; auth != nil {
		s, problem, err := getSecret(ctx, r.Client, rc.Namespace, auth.SecretRef.Name, secretKeyPassword, "spec.auth.secretRef")
		if problem != nil || err != nil {
			return a, problem, err
		}
		a.username, a.password = string(s.Data[secretKeyUsername]), string(s.Data[secretKeyPassword])
		if auth.Username != "" {
			if _, both := s.Data[secretKeyUsername]; both {
				return a, &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonInvalidSecret,
					fmt.Sprintf("the ACL user is set twice: in spec.auth.username and in the key %q of Secret %q (spec.auth.secretRef); remove one", secretKeyUsername, auth.SecretRef.Name)}, nil
			}
			a.username = auth.Username
		}
	}
	var caPEM []byte
	if src := caSourceOf(rc); src != nil {
		pem, problem, err := readCA(ctx, r.Client, r.APIReader, rc.Namespace, src, "")
		if problem != nil || err != nil {
			return a, problem, err
		}
		caPEM = pem
	}
	a.tls = checkTLSConfig(rc, caPEM)
	return a, nil, nil
}

// writeStatus publishes a check; h is nil when no check could run. Degraded
// is True with Ready's reason whenever Ready is False.
func (r *RedisClusterReconciler) writeStatus(ctx context.Context, rc *presencev1alpha1.RedisCluster, seeds []string, h *clusterHealth, ready conditionResult, degraded *conditionResult) error {
	st := *rc.Status.DeepCopy()
	st.ObservedGeneration = rc.Generation
	st.Seeds = seeds
	st.LastCheckTime = rc.Status.LastCheckTime
	if h != nil && h.answered != "" {
		st.Nodes, st.ClusterState, st.SlotsCovered = h.nodes, h.state, int32(h.slotsOK)
		st.Masters, st.Replicas = int32(h.masters), int32(h.replicas)
	} else {
		st.Nodes, st.ClusterState, st.SlotsCovered = nil, "", 0
		st.Masters, st.Replicas = 0, 0
	}
	if degraded == nil {
		degraded = &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonAsExpected, "no problem found"}
		if ready.status != metav1.ConditionTrue {
			degraded = &conditionResult{metav1.ConditionTrue, ready.reason, ready.message}
		}
	}
	for _, c := range []struct {
		t string
		r conditionResult
	}{{presencev1alpha1.ConditionReady, ready}, {presencev1alpha1.ConditionDegraded, *degraded}} {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: c.t, Status: c.r.status, Reason: c.r.reason, Message: truncate(c.r.message), ObservedGeneration: rc.Generation,
		})
	}
	now := r.clock()
	if equality.Semantic.DeepEqual(st, rc.Status) && !heartbeatDue(rc.Status.LastCheckTime, now, r.heartbeat()) {
		return nil
	}
	st.LastCheckTime = &metav1.Time{Time: now}
	before := meta.FindStatusCondition(rc.Status.Conditions, presencev1alpha1.ConditionReady)
	patch := client.MergeFrom(rc.DeepCopy())
	rc.Status = st
	if err := r.Status().Patch(ctx, rc, patch); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	if before == nil || before.Status != ready.status || before.Reason != ready.reason {
		kind := corev1.EventTypeNormal
		if ready.status != metav1.ConditionTrue {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(rc, nil, kind, ready.reason, "Check", "%s", truncate(ready.message))
	}
	log.FromContext(ctx).V(1).Info("status written", "ready", ready.status, "reason", ready.reason)
	return nil
}

func (r *RedisClusterReconciler) interval() time.Duration {
	if r.CheckInterval > 0 {
		return r.CheckInterval
	}
	return DefaultRedisCheckInterval
}

func (r *RedisClusterReconciler) heartbeat() time.Duration {
	if r.CheckHeartbeat > 0 {
		return r.CheckHeartbeat
	}
	return DefaultRedisCheckHeartbeat
}

func (r *RedisClusterReconciler) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// heartbeatDue says whether a check that changed nothing must still write
// status.lastCheckTime: never written, or older than heartbeat.
func heartbeatDue(last *metav1.Time, now time.Time, heartbeat time.Duration) bool {
	return last == nil || now.Sub(last.Time) >= heartbeat
}

func (r *RedisClusterReconciler) timeout() time.Duration {
	if r.CheckTimeout > 0 {
		return r.CheckTimeout
	}
	return DefaultRedisCheckTimeout
}

// indexRedisClusterBySecret maps a Secret back to the RedisClusters whose
// spec.auth or spec.tls.caRef names it.
const indexRedisClusterBySecret = "secretNames"

// secretsOf are the Secrets a RedisCluster reads: spec.auth.secretRef and
// spec.tls.caRef.secretKeyRef.
func secretsOf(rc *presencev1alpha1.RedisCluster) []string {
	var names []string
	if a := rc.Spec.Auth; a != nil {
		names = append(names, a.SecretRef.Name)
	}
	if src := caSourceOf(rc); src != nil && src.kind == "Secret" && !slices.Contains(names, src.name) {
		names = append(names, src.name)
	}
	return names
}

// SetupWithManager registers the controller and the cache index its Secret
// watch uses.
func (r *RedisClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &presencev1alpha1.RedisCluster{}, indexRedisClusterBySecret, func(o client.Object) []string {
		return secretsOf(o.(*presencev1alpha1.RedisCluster))
	}); err != nil {
		return fmt.Errorf("index RedisCluster by %s: %w", indexRedisClusterBySecret, err)
	}
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = DefaultRedisClusterWorkers
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("rediscluster").
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		// Status writes do not change the generation, so they do not
		// trigger a check; the interval does.
		For(&presencev1alpha1.RedisCluster{}, builder.WithPredicates(specOrPauseChanged())).
		// Metadata only: Secrets are not cached (CacheOptions); the
		// reconciler reads the ones it needs from the API server. A CA in a
		// ConfigMap is not watched (the cache holds only the operator's own
		// ConfigMaps): each check, every CheckInterval, reads it again.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.clustersForSecret), builder.OnlyMetadata).
		Complete(r)
}

// RedisClusterChanged passes the RedisCluster updates that matter to the
// gateways that use it: a new spec, or a status that says something new.
// A heartbeat that refreshes only status.lastCheckTime does not pass, so it
// does not wake every gateway of a shared cluster.
func RedisClusterChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			older, okOld := e.ObjectOld.(*presencev1alpha1.RedisCluster)
			newer, okNew := e.ObjectNew.(*presencev1alpha1.RedisCluster)
			if !okOld || !okNew || older.Generation != newer.Generation {
				return true
			}
			a, b := older.Status.DeepCopy(), newer.Status.DeepCopy()
			a.LastCheckTime, b.LastCheckTime = nil, nil
			return !equality.Semantic.DeepEqual(a, b)
		},
	}
}

// clustersForSecret maps a Secret to the RedisClusters whose spec.auth or
// spec.tls.caRef names it.
func (r *RedisClusterReconciler) clustersForSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	var list presencev1alpha1.RedisClusterList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{indexRedisClusterBySecret: obj.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list RedisClusters by Secret", "secret", obj.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, rc := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: rc.Namespace, Name: rc.Name}})
	}
	return reqs
}
