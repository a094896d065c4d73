package controllers

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

func rolledOut(n int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "chat", Generation: 3},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(n)},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
	}
}

var redisOK = conditionResult{metav1.ConditionTrue, presencev1alpha1.ReasonRedisClusterReady, "ok"}

func TestComputeStatus(t *testing.T) {
	rolling := rolledOut(3)
	rolling.Status.UpdatedReplicas = 1
	stuck := rolledOut(3)
	stuck.Status.Conditions = append(stuck.Status.Conditions, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"})
	notFound := &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotFound, "RedisCluster \"x\" not found"}

	tests := []struct {
		name         string
		obs          gatewayObservation
		wantReady    string // reason; Ready is True only for ReasonReady
		wantDegraded metav1.ConditionStatus
	}{
		{"all good", gatewayObservation{redis: redisOK, deployment: rolledOut(3)}, presencev1alpha1.ReasonReady, metav1.ConditionFalse},
		{"rolling out", gatewayObservation{redis: redisOK, deployment: rolling}, presencev1alpha1.ReasonRolloutInProgress, metav1.ConditionFalse},
		{"stuck rollout", gatewayObservation{redis: redisOK, deployment: stuck}, presencev1alpha1.ReasonProgressDeadlineExceeded, metav1.ConditionTrue},
		{"redis not ready", gatewayObservation{redis: conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotReady, "down"}, deployment: rolledOut(3)},
			presencev1alpha1.ReasonRedisClusterNotReady, metav1.ConditionTrue},
		{"redis missing, no deployment", gatewayObservation{redis: *notFound, blocked: notFound}, presencev1alpha1.ReasonRedisClusterNotFound, metav1.ConditionTrue},
		{"invalid spec", gatewayObservation{redis: redisOK, blocked: &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonInvalidSpec, "no image"}},
			presencev1alpha1.ReasonInvalidSpec, metav1.ConditionTrue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			gw := testGateway(nil)
			gw.Generation = 7
			st := computeStatus(gw, &tt.obs)
			ready := meta.FindStatusCondition(st.Conditions, presencev1alpha1.ConditionReady)
			g.Expect(ready.Reason).To(Equal(tt.wantReady))
			g.Expect(ready.Status == metav1.ConditionTrue).To(Equal(tt.wantReady == presencev1alpha1.ReasonReady))
			g.Expect(meta.FindStatusCondition(st.Conditions, presencev1alpha1.ConditionDegraded).Status).To(Equal(tt.wantDegraded))
			g.Expect(st.Conditions).To(HaveLen(5))
			for _, c := range st.Conditions {
				g.Expect(c.ObservedGeneration).To(Equal(int64(7)), c.Type)
				g.Expect(c.Reason).To(MatchRegexp(`^[A-Z][A-Za-z]*$`), c.Type)
			}
			g.Expect(st.ObservedGeneration).To(Equal(int64(7)))

			// Computing again from the same observation changes nothing:
			// the reconciler then writes no status (no hot loop).
			gw.Status = st
			g.Expect(computeStatus(gw, &tt.obs)).To(Equal(st))
		})
	}
}

// TestProgressingWhileTheDeploymentIsCreated: with Redis ready and nothing
// in the way, a Deployment that is not there (yet) is a rollout starting,
// not "waiting for Redis".
func TestProgressingWhileTheDeploymentIsCreated(t *testing.T) {
	g := NewWithT(t)
	st := computeStatus(testGateway(nil), &gatewayObservation{redis: redisOK})
	progressing := meta.FindStatusCondition(st.Conditions, presencev1alpha1.ConditionProgressing)
	g.Expect(progressing.Reason).To(Equal(presencev1alpha1.ReasonRolloutInProgress))
	g.Expect(progressing.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(meta.FindStatusCondition(st.Conditions, presencev1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
}

// TestReadyWaitsForTheDeploymentToObserveItsGeneration: a Deployment whose
// controller has not yet observed its latest generation is rolling out, even
// if its counters still describe the previous, finished rollout.
func TestReadyWaitsForTheDeploymentToObserveItsGeneration(t *testing.T) {
	g := NewWithT(t)
	dep := rolledOut(3)
	dep.Generation = 4 // the template just changed; status still says generation 3
	st := computeStatus(testGateway(nil), &gatewayObservation{redis: redisOK, deployment: dep})
	ready := meta.FindStatusCondition(st.Conditions, presencev1alpha1.ConditionReady)
	g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(ready.Reason).To(Equal(presencev1alpha1.ReasonRolloutInProgress))
}
