package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

// A new pod template restarts every pod of a fleet, and each restart drops
// the clients of that pod. When the change comes from the PresenceGateway's
// own spec, its owner asked for it and it rolls at once. When it comes from
// something many fleets share (the operator's default image, a new operator
// version that renders the template differently, the RedisCluster's
// spec.auth), every fleet would restart at the same moment; such rollouts
// take a slot, at most --max-concurrent-rollouts at a time, and the other
// fleets keep their current template, say so in Progressing (RolloutQueued)
// and go when a slot frees. What changes often and is shared (the Redis
// nodes, the Redis password, the JWT secret) is not in the template at all:
// the pods mount it and re-read it.
//
// The Deployment (not its pod template) carries three annotations that let
// the next reconcile tell the two apart:
const (
	// annotationTemplateHash is a hash of the pod template last applied.
	annotationTemplateHash = "presence.presencekit.io/template-hash"
	// annotationSpec is "<generation>/<hash>": the PresenceGateway's
	// generation and the hash of the template it renders with its own
	// image (the default image left out), at the last template change.
	annotationSpec = "presence.presencekit.io/spec"
	// annotationRolloutCause is why the template last changed: causeSpec
	// or causeShared. A Deployment rolling out for causeShared holds a slot.
	annotationRolloutCause = "presence.presencekit.io/rollout-cause"
)

// rolloutCause says why a pod template changes.
type rolloutCause string

const (
	// causeNone: the template does not change (or the Deployment is new).
	causeNone rolloutCause = ""
	// causeSpec: the PresenceGateway's spec changed what it renders.
	causeSpec rolloutCause = "Spec"
	// causeShared: something outside the spec changed the template.
	causeShared rolloutCause = "Shared"
)

// templateHash fingerprints a pod template.
func templateHash(t *corev1.PodTemplateSpec) string {
	b, err := json.Marshal(t) // struct fields in order, map keys sorted: stable
	if err != nil {
		panic(fmt.Sprintf("marshal a pod template: %v", err)) // a PodTemplateSpec always marshals
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// specRendering is annotationSpec's value for gw: the template its own
// spec renders (with spec.image, or none when it relies on the default).
func specRendering(gw *presencev1alpha1.PresenceGateway, deps gwspecs.Deps) string {
	own := gwspecs.Deployment(gw, deps, gw.Spec.Image)
	return strconv.FormatInt(gw.Generation, 10) + "/" + templateHash(&own.Spec.Template)
}

// classifyRollout says whether applying desired to live changes the pod
// template, and why. spec is specRendering of the PresenceGateway now. A
// template change counts as the spec's when both the generation and the
// spec's own rendering moved since the last template apply: a spec edit
// that leaves the template alone (replicas, the Service) does not carry a
// queued shared change along, and an operator upgrade (same generation,
// new rendering) is shared. A Deployment without the annotations (made by
// an older operator) changes for a shared reason.
func classifyRollout(live, desired *appsv1.Deployment, spec string) rolloutCause {
	if live == nil || live.UID == "" {
		return causeNone
	}
	if live.Annotations[annotationTemplateHash] == desired.Annotations[annotationTemplateHash] {
		return causeNone
	}
	oldGen, oldHash, ok := strings.Cut(live.Annotations[annotationSpec], "/")
	newGen, newHash, _ := strings.Cut(spec, "/")
	if ok && oldGen != newGen && oldHash != newHash {
		return causeSpec
	}
	return causeShared
}

// holdsRolloutSlot reports whether dep is rolling out a shared change: its
// controller has not observed the new generation yet, or it has pods still
// to update or make available, or it is stuck (a shared rollout that does
// not complete keeps its slot, so a bad default image stops after
// --max-concurrent-rollouts fleets).
func holdsRolloutSlot(dep *appsv1.Deployment) bool {
	if dep == nil || dep.Annotations[annotationRolloutCause] != string(causeShared) {
		return false
	}
	_, progressing, stuck := rolloutState(dep)
	return stuck || progressing.status == metav1.ConditionTrue
}

// rolloutLimiter hands out the --max-concurrent-rollouts slots, first come
// first served. It is shared by the reconciler's workers.
type rolloutLimiter struct {
	max  int // 0: no limit
	wake chan event.GenericEvent

	mu sync.Mutex
	// waiting lists the PresenceGateways whose shared rollout waits, in
	// the order they started waiting.
	waiting []types.NamespacedName
	// started holds the shared rollouts this process applied whose
	// Deployment the cache may not show yet: the generation the apply
	// returned (0 while the apply is under way).
	started map[types.NamespacedName]int64
}

func newRolloutLimiter(maxRollouts int) *rolloutLimiter {
	return &rolloutLimiter{max: maxRollouts, wake: make(chan event.GenericEvent, 1024), started: map[types.NamespacedName]int64{}}
}

// slotHolders lists the PresenceGateways rolling out a shared change: the
// cached Deployments that hold a slot, and the rollouts started here that
// the cache has not caught up with. Called with l.mu held.
func (l *rolloutLimiter) slotHolders(ctx context.Context, c client.Reader) (map[types.NamespacedName]bool, error) {
	var deps appsv1.DeploymentList
	if err := c.List(ctx, &deps, client.MatchingLabels{ManagedByLabel: ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list gateway Deployments: %w", err)
	}
	holders := map[types.NamespacedName]bool{}
	generation := map[types.NamespacedName]int64{}
	for i := range deps.Items {
		d := &deps.Items[i]
		key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
		generation[key] = d.Generation
		if holdsRolloutSlot(d) {
			holders[key] = true
		}
	}
	for key, gen := range l.started {
		seen, cached := generation[key]
		switch {
		case gen == 0: // the apply is under way
			holders[key] = true
		case !cached || seen >= gen:
			// The cache shows the rollout (counted above while it rolls),
			// or the Deployment is gone: shared rollouts only ever start
			// on Deployments the cache held.
			delete(l.started, key)
		default:
			holders[key] = true
		}
	}
	return holders, nil
}

// acquire asks for a slot for key's shared rollout. Granted, the slot is
// reserved until the caller reports the apply (applied) or gives it back
// (release). Refused, key waits in line; the message says why.
func (l *rolloutLimiter) acquire(ctx context.Context, c client.Reader, key types.NamespacedName) (granted bool, message string, err error) {
	if l.max <= 0 {
		return true, "", nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	holders, err := l.slotHolders(ctx, c)
	if err != nil {
		return false, "", err
	}
	if !slices.Contains(l.waiting, key) {
		l.waiting = append(l.waiting, key)
	}
	free := l.max - len(holders)
	if holders[key] || slices.Index(l.waiting, key) < free {
		l.waiting = slices.DeleteFunc(l.waiting, func(k types.NamespacedName) bool { return k == key })
		l.started[key] = 0
		return true, "", nil
	}
	return false, fmt.Sprintf("a change not made in this PresenceGateway's spec (the operator's gateway image or how it renders pods, "+
		"or the RedisCluster's spec.auth) waits for a rollout slot: %d of %d in use (--max-concurrent-rollouts), %d fleet(s) waiting",
		len(holders), l.max, len(l.waiting)), nil
}

// applied records the Deployment generation key's shared rollout produced.
func (l *rolloutLimiter) applied(key types.NamespacedName, generation int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.started[key]; ok {
		l.started[key] = generation
	}
}

// release gives back a slot reserved for an apply that did not happen, and
// takes key out of the line (its rollout is no longer shared, it is
// blocked, paused or gone). It reports whether key was waiting.
func (l *rolloutLimiter) release(key types.NamespacedName) (wasWaiting bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen, ok := l.started[key]; ok && gen == 0 {
		delete(l.started, key)
	}
	n := len(l.waiting)
	l.waiting = slices.DeleteFunc(l.waiting, func(k types.NamespacedName) bool { return k == key })
	return len(l.waiting) != n
}

// wakeWaiting enqueues the PresenceGateways first in line, as many as there
// are free slots: called when a slot may have freed.
func (l *rolloutLimiter) wakeWaiting(ctx context.Context, c client.Reader) {
	if l.max <= 0 {
		return
	}
	l.mu.Lock()
	holders, err := l.slotHolders(ctx, c)
	var next []types.NamespacedName
	if err == nil {
		next = slices.Clone(l.waiting[:max(0, min(len(l.waiting), l.max-len(holders)))])
	}
	l.mu.Unlock()
	if err != nil {
		log.FromContext(ctx).Error(err, "count rollout slots")
		return
	}
	for _, key := range next {
		select {
		case l.wake <- event.GenericEvent{Object: &presencev1alpha1.PresenceGateway{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}:
		default: // full: the queued gateways' periodic requeue catches up
		}
	}
}

// slotFreed wakes the waiting gateways when a Deployment stops holding a
// slot: its shared rollout completed, its cause changed, or it was deleted.
func (r *PresenceGatewayReconciler) slotFreed() handler.TypedEventHandler[client.Object, reconcile.Request] {
	return handler.Funcs{
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if holdsRolloutSlot(asDeployment(e.ObjectOld)) && !holdsRolloutSlot(asDeployment(e.ObjectNew)) {
				r.limiter().wakeWaiting(ctx, r.Client)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if holdsRolloutSlot(asDeployment(e.Object)) {
				r.limiter().wakeWaiting(ctx, r.Client)
			}
		},
	}
}

func asDeployment(o client.Object) *appsv1.Deployment {
	d, _ := o.(*appsv1.Deployment)
	return d
}

// prepareRollout decides whether gw's Deployment may be applied now. It
// annotates desired (see the annotations above) and, when the pod template
// changes for a shared reason and no slot is free, returns the
// RolloutQueued condition: the Deployment must then be left as it is.
func (r *PresenceGatewayReconciler) prepareRollout(ctx context.Context, gw *presencev1alpha1.PresenceGateway, deps gwspecs.Deps,
	desired, live *appsv1.Deployment,
) (cause rolloutCause, queued *conditionResult, err error) {
	spec := specRendering(gw, deps)
	if desired.Annotations == nil {
		desired.Annotations = map[string]string{}
	}
	desired.Annotations[annotationTemplateHash] = templateHash(&desired.Spec.Template)
	desired.Annotations[annotationSpec] = spec
	cause = classifyRollout(live, desired, spec)
	switch cause {
	case causeNone:
		// The template stays: so do the record of the spec that made it
		// (a spec edit that leaves the template alone writes nothing on the
		// Deployment) and the cause of its rollout, which may hold a slot.
		for _, a := range []string{annotationSpec, annotationRolloutCause} {
			if v, ok := live.Annotations[a]; ok {
				desired.Annotations[a] = v
			}
		}
		return cause, nil, nil
	case causeSpec:
		desired.Annotations[annotationRolloutCause] = string(causeSpec)
		return cause, nil, nil
	}
	desired.Annotations[annotationRolloutCause] = string(causeShared)
	granted, message, err := r.limiter().acquire(ctx, r.Client, client.ObjectKeyFromObject(gw))
	if err != nil || granted {
		return cause, nil, err
	}
	return cause, &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonRolloutQueued, message: message}, nil
}
