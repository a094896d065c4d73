package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// isPaused says whether obj carries presence.presencekit.io/reconcile: "false".
func isPaused(obj metav1.Object) bool {
	return obj.GetAnnotations()[presencev1alpha1.AnnotationReconcile] == "false"
}

// syncPaused is the first step of both reconcilers. For a paused obj it
// publishes the Paused condition (once) and returns true: the caller stops
// there, changing nothing else. For an obj that is not paused (any more) it
// removes a Paused condition left from before and returns false. conditions
// points into obj's status.
func syncPaused(ctx context.Context, c client.Client, obj client.Object, conditions *[]metav1.Condition) (bool, error) {
	paused := isPaused(obj)
	current := meta.FindStatusCondition(*conditions, presencev1alpha1.ConditionPaused)
	if !paused && current == nil {
		return false, nil
	}
	if paused && current != nil && current.Status == metav1.ConditionTrue && current.ObservedGeneration == obj.GetGeneration() {
		return true, nil
	}
	patch := client.MergeFromWithOptions(obj.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	if paused {
		meta.SetStatusCondition(conditions, metav1.Condition{
			Type:               presencev1alpha1.ConditionPaused,
			Status:             metav1.ConditionTrue,
			Reason:             presencev1alpha1.ReasonReconcilePaused,
			ObservedGeneration: obj.GetGeneration(),
			Message: fmt.Sprintf("the annotation %s is \"false\": the operator changes nothing here until it is removed; the other conditions are as last observed",
				presencev1alpha1.AnnotationReconcile),
		})
	} else {
		meta.RemoveStatusCondition(conditions, presencev1alpha1.ConditionPaused)
	}
	if err := c.Status().Patch(ctx, obj, patch); err != nil {
		return paused, fmt.Errorf("write the Paused condition: %w", err)
	}
	return paused, nil
}

// pauseChanged passes updates that set, change or remove the pause
// annotation, which changes no generation.
func pauseChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetAnnotations()[presencev1alpha1.AnnotationReconcile] !=
				e.ObjectNew.GetAnnotations()[presencev1alpha1.AnnotationReconcile]
		},
	}
}

// specOrPauseChanged is the predicate of both controllers' primary
// resource: a new generation (our own status writes make none) or a change
// of the pause annotation.
func specOrPauseChanged() predicate.Predicate {
	return predicate.Or(predicate.GenerationChangedPredicate{}, pauseChanged())
}
