package controllers

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

// conditionResult is one condition's status, reason and message.
type conditionResult struct {
	status  metav1.ConditionStatus
	reason  string
	message string
}

// gatewayObservation is what one reconcile found, the input of computeStatus.
type gatewayObservation struct {
	// redis is the RedisReady condition.
	redis conditionResult
	// blocked, when set, says why the owned objects were not (all) applied.
	blocked *conditionResult
	// deployment is the gateway Deployment, nil when there is none: as the
	// API server returned it from this reconcile's apply when
	// deploymentKnown, else as cached.
	deployment      *appsv1.Deployment
	deploymentKnown bool
	// redisNodes are the seed nodes the pods read from their ConfigMap
	// (nil when unresolved).
	redisNodes []string
	// queued, when set, is the RolloutQueued Progressing condition: the
	// Deployment's new pod template waits for a rollout slot.
	queued *conditionResult
	// hpa is the gateway's HorizontalPodAutoscaler as cached, read by
	// writeStatus (nil: none yet, or no spec.autoscaling). Its status is
	// the HPA controller's, so the cache is as good as an apply's result.
	hpa *autoscalingv2.HorizontalPodAutoscaler
	// service is the client Service, as this reconcile's apply returned it
	// or else as cached (nil when there is none): its load balancer
	// address is an endpoint.
	service *corev1.Service
	// routeTLS says whether spec.httpRoute's parent Gateways terminate TLS.
	routeTLS bool
	// exposure, when set, is a problem with exposing the gateways outside
	// the cluster (Degraded; the gateways still serve in the cluster).
	exposure *conditionResult
}

// autoscaling is the Autoscaling condition, read from the HPA's own
// conditions the way `kubectl describe hpa` shows them: AbleToScale, then
// ScalingActive, then ScalingLimited. Reasons that change with every
// evaluation (ReadyForNewScale, ScaleDownStabilized) are not copied, so a
// working HPA does not rewrite the status.
func autoscaling(hpa *autoscalingv2.HorizontalPodAutoscaler) conditionResult {
	if hpa == nil {
		return conditionResult{metav1.ConditionUnknown, presencev1alpha1.ReasonAutoscalerPending,
			"the HorizontalPodAutoscaler has not been created yet"}
	}
	find := func(t autoscalingv2.HorizontalPodAutoscalerConditionType) *autoscalingv2.HorizontalPodAutoscalerCondition {
		for i := range hpa.Status.Conditions {
			if hpa.Status.Conditions[i].Type == t {
				return &hpa.Status.Conditions[i]
			}
		}
		return nil
	}
	describe := func(c *autoscalingv2.HorizontalPodAutoscalerCondition) string {
		return fmt.Sprintf("HorizontalPodAutoscaler %s: %s=%s %s: %s", hpa.Name, c.Type, c.Status, c.Reason, c.Message)
	}
	able, active, limited := find(autoscalingv2.AbleToScale), find(autoscalingv2.ScalingActive), find(autoscalingv2.ScalingLimited)
	switch {
	case able != nil && able.Status == corev1.ConditionFalse:
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonAutoscalerUnableToScale, describe(able)}
	case active != nil && active.Status == corev1.ConditionFalse && strings.HasPrefix(active.Reason, "FailedGet"):
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonAutoscalerMetricsUnavailable, describe(active)}
	case active != nil && active.Status == corev1.ConditionFalse:
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonAutoscalerUnableToScale, describe(active)}
	case active == nil:
		return conditionResult{metav1.ConditionUnknown, presencev1alpha1.ReasonAutoscalerPending,
			fmt.Sprintf("HorizontalPodAutoscaler %s has not been evaluated yet", hpa.Name)}
	case limited != nil && limited.Status == corev1.ConditionTrue:
		return conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonScalingLimited, describe(limited)}
	default:
		return conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonScalingActive,
			fmt.Sprintf("HorizontalPodAutoscaler %s computes the replica count from its metrics, between %d and %d pods",
				hpa.Name, ptr.Deref(hpa.Spec.MinReplicas, 1), hpa.Spec.MaxReplicas)}
	}
}

// redisReadiness is the RedisReady condition: the problem resolving the
// RedisCluster or its Secret if any, else the RedisCluster's own Ready. It
// names the RedisCluster's reason but does not copy its message: that
// message changes from one check to the next while the reason stays (the
// slots covered while a cluster recovers, which seeds fail and how), and a
// copy would rewrite the status of every gateway sharing the RedisCluster
// on each change (docs/benchmarks.md, "Operator").
func redisReadiness(rc *presencev1alpha1.RedisCluster, problem *conditionResult) conditionResult {
	if problem != nil {
		return *problem
	}
	c := meta.FindStatusCondition(rc.Status.Conditions, presencev1alpha1.ConditionReady)
	switch {
	case c == nil || c.ObservedGeneration != rc.Generation:
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotReady,
			fmt.Sprintf("RedisCluster %q has not been checked yet", rc.Name)}
	case c.Status != metav1.ConditionTrue:
		return conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotReady,
			fmt.Sprintf("RedisCluster %q is not ready: %s (its status says more)", rc.Name, c.Reason)}
	default:
		return conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonRedisClusterReady,
			fmt.Sprintf("RedisCluster %q is ready", rc.Name)}
	}
}

// rolloutState reads the Deployment the way `kubectl rollout status` does.
func rolloutState(dep *appsv1.Deployment) (available, progressing conditionResult, stuck bool) {
	want := ptr.Deref(dep.Spec.Replicas, 1)
	st := dep.Status
	for _, c := range st.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			stuck = true
		}
	}
	if c := deploymentCondition(dep, appsv1.DeploymentAvailable); c != nil && c.Status == corev1.ConditionTrue {
		available = conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonMinimumReplicasAvailable,
			fmt.Sprintf("%d of %d gateway pods ready", st.ReadyReplicas, want)}
	} else {
		available = conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonMinimumReplicasUnavailable,
			fmt.Sprintf("%d of %d gateway pods ready", st.ReadyReplicas, want)}
	}
	switch {
	case stuck:
		progressing = conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonProgressDeadlineExceeded,
			fmt.Sprintf("Deployment %s made no progress within its deadline: %d of %d pods updated, %d available", dep.Name, st.UpdatedReplicas, want, st.AvailableReplicas)}
	case st.ObservedGeneration < dep.Generation || st.UpdatedReplicas < want || st.Replicas > st.UpdatedReplicas || st.AvailableReplicas < st.UpdatedReplicas:
		progressing = conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonRolloutInProgress,
			fmt.Sprintf("rolling out: %d of %d pods updated, %d available", st.UpdatedReplicas, want, st.AvailableReplicas)}
	default:
		progressing = conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonRolloutComplete,
			fmt.Sprintf("all %d pods run the current template", want)}
	}
	return available, progressing, stuck
}

func deploymentCondition(dep *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range dep.Status.Conditions {
		if dep.Status.Conditions[i].Type == t {
			return &dep.Status.Conditions[i]
		}
	}
	return nil
}

// computeStatus derives gw's next status from an observation. Conditions
// keep their lastTransitionTime unless their status flips, and each carries
// the generation it describes.
func computeStatus(gw *presencev1alpha1.PresenceGateway, obs *gatewayObservation) presencev1alpha1.PresenceGatewayStatus {
	st := *gw.Status.DeepCopy()
	st.ObservedGeneration = gw.Generation
	st.Endpoint = gwspecs.Endpoint(gw)
	st.Endpoints = gwspecs.Endpoints(gw, obs.service, obs.routeTLS)
	st.Selector = labels.SelectorFromSet(gwspecs.SelectorLabels(gw)).String()
	if obs.redisNodes != nil {
		st.RedisNodes = obs.redisNodes
	}
	st.Replicas, st.ReadyReplicas = 0, 0

	var available, progressing conditionResult
	stuck := false
	if dep := obs.deployment; dep != nil {
		st.Replicas, st.ReadyReplicas = dep.Status.Replicas, dep.Status.ReadyReplicas
		available, progressing, stuck = rolloutState(dep)
		if obs.queued != nil && !stuck && progressing.status != metav1.ConditionTrue {
			progressing = *obs.queued
		}
	} else {
		why := "the Deployment has not been created"
		if obs.blocked != nil {
			why += ": " + obs.blocked.message
		}
		available = conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonMinimumReplicasUnavailable, why}
		switch {
		case obs.blocked == nil:
			// Nothing in the way: the Deployment is being created.
			progressing = conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonRolloutInProgress, why}
		case obs.blocked.reason == presencev1alpha1.ReasonRedisClusterNotFound || obs.blocked.reason == presencev1alpha1.ReasonRedisClusterNotReady:
			progressing = conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonWaitingForRedis, why}
		default:
			progressing = conditionResult{metav1.ConditionFalse, obs.blocked.reason, why}
		}
	}

	// Ready names the first thing in the way, in the order a user fixes them.
	ready := conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonReady,
		fmt.Sprintf("%d gateway pods ready at %s", st.ReadyReplicas, st.Endpoint)}
	degraded := conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonAsExpected, "no problem found"}
	switch {
	case obs.blocked != nil:
		ready = *obs.blocked
		degraded = conditionResult{metav1.ConditionTrue, obs.blocked.reason, obs.blocked.message}
	case obs.redis.status != metav1.ConditionTrue:
		ready = obs.redis
		degraded = conditionResult{metav1.ConditionTrue, obs.redis.reason, obs.redis.message}
	case stuck:
		ready = conditionResult{metav1.ConditionFalse, progressing.reason, progressing.message}
		degraded = ready
		degraded.status = metav1.ConditionTrue
	case progressing.status == metav1.ConditionTrue:
		ready = conditionResult{metav1.ConditionFalse, progressing.reason, progressing.message}
	case available.status != metav1.ConditionTrue:
		ready = conditionResult{metav1.ConditionFalse, available.reason, available.message}
	}

	if obs.exposure != nil && degraded.status != metav1.ConditionTrue {
		degraded = *obs.exposure
	}

	// The HPA does not make the gateways unready (their pods serve), but
	// one that cannot scale needs a human.
	if gw.Spec.Autoscaling == nil || obs.blocked != nil {
		meta.RemoveStatusCondition(&st.Conditions, presencev1alpha1.ConditionAutoscaling)
	} else {
		as := autoscaling(obs.hpa)
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: presencev1alpha1.ConditionAutoscaling, Status: as.status, Reason: as.reason, Message: truncate(as.message), ObservedGeneration: gw.Generation,
		})
		if as.status == metav1.ConditionFalse && degraded.status != metav1.ConditionTrue {
			degraded = conditionResult{metav1.ConditionTrue, as.reason, as.message}
		}
	}

	for _, c := range []struct {
		t string
		r conditionResult
	}{
		{presencev1alpha1.ConditionReady, ready},
		{presencev1alpha1.ConditionAvailable, available},
		{presencev1alpha1.ConditionProgressing, progressing},
		{presencev1alpha1.ConditionRedisReady, obs.redis},
		{presencev1alpha1.ConditionDegraded, degraded},
	} {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: c.t, Status: c.r.status, Reason: c.r.reason, Message: truncate(c.r.message), ObservedGeneration: gw.Generation,
		})
	}
	return st
}

// truncate keeps condition messages well under the API's 32768-byte limit.
func truncate(s string) string {
	const maxLen = 4096
	if len(s) > maxLen {
		return s[:maxLen-3] + "..."
	}
	return s
}

func isTrue(conds []metav1.Condition, t string) bool {
	return meta.IsStatusConditionTrue(conds, t)
}

func findCondition(conds []metav1.Condition, t string) *metav1.Condition {
	return meta.FindStatusCondition(conds, t)
}
