package gateway

import (
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// PDB renders gw's PodDisruptionBudget, or nil when at most one pod
// can run (a PDB there would only block node drains).
func PDB(gw *presencev1alpha1.PresenceGateway) *policyv1.PodDisruptionBudget {
	if maxPossibleReplicas(gw) <= 1 {
		return nil
	}
	maxUnavailable := intstr.FromInt32(1)
	if mu := gw.Spec.PodDisruptionBudget.MaxUnavailable; mu != nil {
		maxUnavailable = *mu
	}
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: gw.Name, Namespace: gw.Namespace, Labels: ObjectLabels(gw)},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &maxUnavailable,
			Selector:       &metav1.LabelSelector{MatchLabels: SelectorLabels(gw)},
		},
	}
}
