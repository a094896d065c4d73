package main

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// gatewayState is what the watch saw of one PresenceGateway.
type gatewayState struct {
	// ready is Ready=True for the current generation.
	ready bool
	// firstReady is when ready was first seen.
	firstReady time.Time
}

// tracker follows the bench namespace's PresenceGateways, their
// Deployments and the RedisCluster through informers, and wakes waiters on
// every change: the bench waits on watch events, never on a sleep.
type tracker struct {
	mu          sync.Mutex
	gateways    map[string]*gatewayState
	deployments map[string]time.Time // first seen
	// rolledOut is when each Deployment was first seen rolled out: what
	// the operator waits for to write Ready (the control plane's part).
	rolledOut  map[string]time.Time
	redisReady *bool         // nil until the RedisCluster is seen
	changed    chan struct{} // capacity 1: "something changed"
}

func newTracker() *tracker {
	return &tracker{gateways: map[string]*gatewayState{}, deployments: map[string]time.Time{}, rolledOut: map[string]time.Time{}, changed: make(chan struct{}, 1)}
}

// currentReady is Ready=True with the object's own generation.
func currentReady(conds []metav1.Condition, generation int64) bool {
	c := meta.FindStatusCondition(conds, presencev1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == generation
}

func (t *tracker) wake() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

func (t *tracker) onGateway(obj any) {
	gw, ok := obj.(*presencev1alpha1.PresenceGateway)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	s := t.gateways[gw.Name]
	if s == nil {
		s = &gatewayState{}
		t.gateways[gw.Name] = s
	}
	s.ready = currentReady(gw.Status.Conditions, gw.Generation)
	if s.ready && s.firstReady.IsZero() {
		s.firstReady = now
	}
	t.mu.Unlock()
	t.wake()
}

func (t *tracker) onDeployment(obj any) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	if _, seen := t.deployments[d.Name]; !seen {
		t.deployments[d.Name] = now
	}
	if _, seen := t.rolledOut[d.Name]; !seen && rolledOut(d) {
		t.rolledOut[d.Name] = now
	}
	t.mu.Unlock()
	t.wake()
}

// rolledOut: the Deployment's controller has seen its generation and every
// pod is updated and available, as `kubectl rollout status` reads it.
func rolledOut(d *appsv1.Deployment) bool {
	want := ptr.Deref(d.Spec.Replicas, 1)
	st := d.Status
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want
}

func (t *tracker) onRedisCluster(obj any) {
	rc, ok := obj.(*presencev1alpha1.RedisCluster)
	if !ok {
		return
	}
	ready := currentReady(rc.Status.Conditions, rc.Generation)
	t.mu.Lock()
	t.redisReady = &ready
	t.mu.Unlock()
	t.wake()
}

// counts is a snapshot for predicates and progress lines.
type counts struct {
	gateways, ready, deployments int
	redisReady                   *bool
}

func (c counts) String() string {
	rc := "unseen"
	if c.redisReady != nil {
		rc = fmt.Sprintf("Ready=%t", *c.redisReady)
	}
	return fmt.Sprintf("%d gateways, %d Ready, %d Deployments, RedisCluster %s", c.gateways, c.ready, c.deployments, rc)
}

func (t *tracker) snapshot() counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := counts{gateways: len(t.gateways), deployments: len(t.deployments), redisReady: t.redisReady}
	for _, s := range t.gateways {
		if s.ready {
			c.ready++
		}
	}
	return c
}

// waitFor returns when cond holds on a snapshot, woken by watch events, or
// fails after timeout. It logs progress every 10 s.
func (t *tracker) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(counts) bool) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	for {
		c := t.snapshot()
		if cond(c) {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("%s: not after %s (%s)", what, timeout, c)
		case <-progress.C:
			slog.Info("waiting", "for", what, "state", c.String())
		case <-t.changed:
		}
	}
}

// readyTimes are the first-Ready times of the gateways, after t0, sorted.
func (t *tracker) readyTimes(t0 time.Time) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ds []time.Duration
	for _, s := range t.gateways {
		if !s.firstReady.IsZero() {
			ds = append(ds, s.firstReady.Sub(t0))
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

// operatorLag is, per gateway, the time from its Deployment being rolled
// out to the gateway's first Ready=True: the operator's part of the wait
// once the control plane is done. Sorted.
func (t *tracker) operatorLag() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ds []time.Duration
	for name, s := range t.gateways {
		if r, ok := t.rolledOut[name]; ok && !s.firstReady.IsZero() {
			ds = append(ds, max(s.firstReady.Sub(r), 0))
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

// lastRolledOut is when the last Deployment was first seen rolled out.
func (t *tracker) lastRolledOut() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var last time.Time
	for _, r := range t.rolledOut {
		if r.After(last) {
			last = r
		}
	}
	return last
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return sorted[i]
}

// watch registers the tracker's handlers on c's informers.
func (t *tracker) watch(ctx context.Context, c cache.Cache) error {
	for _, w := range []struct {
		obj client.Object
		fn  func(any)
	}{
		{&presencev1alpha1.PresenceGateway{}, t.onGateway},
		{&appsv1.Deployment{}, t.onDeployment},
		{&presencev1alpha1.RedisCluster{}, t.onRedisCluster},
	} {
		inf, err := c.GetInformer(ctx, w.obj)
		if err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    w.fn,
			UpdateFunc: func(_, n any) { w.fn(n) },
		}); err != nil {
			return err
		}
	}
	return nil
}
