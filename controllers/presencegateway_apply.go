package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// restartedAtAnnotation is what `kubectl rollout restart` sets on a pod
// template; it is kept when the operator replaces a drifted template, so
// that correcting drift does not cause a second rollout.
const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// applyOwned makes the live object named like desired match it: created when
// missing, otherwise merged by mergeInto (which copies only the fields the
// operator owns) and updated only when that changed something. live is an
// empty object of desired's type; the object as the API server now has it is
// returned.
//
// Get+Update with the resourceVersion of the read (rather than server-side
// apply) is deliberate: the Deployment's replicas must be left exactly as the
// HPA set them, and an optimistic-concurrency conflict with the HPA then
// means a retry, never an overwrite.
func applyOwned[T client.Object](ctx context.Context, r *PresenceGatewayReconciler, gw *presencev1alpha1.PresenceGateway,
	kind string, desired, live T, mergeInto func(live, desired T)) (T, error) {
	var zero T
	if err := controllerutil.SetControllerReference(gw, desired, r.Scheme); err != nil {
		return zero, fmt.Errorf("set owner of %s %s: %w", kind, desired.GetName(), err)
	}
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), live)
	if apierrors.IsNotFound(err) {
		if err := r.Create(ctx, desired); err != nil {
			return zero, fmt.Errorf("create %s %s: %w", kind, desired.GetName(), err)
		}
		r.Recorder.Eventf(gw, desired, corev1.EventTypeNormal, "Created", "Create", "Created %s %s", kind, desired.GetName())
		return desired, nil
	}
	if err != nil {
		return zero, fmt.Errorf("get %s %s: %w", kind, desired.GetName(), err)
	}
	if owner := metav1.GetControllerOf(live); owner != nil && owner.UID != gw.UID {
		return zero, fmt.Errorf("%s %s already exists and is controlled by %s %s, not by this PresenceGateway", kind, live.GetName(), owner.Kind, owner.Name)
	}
	before := live.DeepCopyObject()
	mergeInto(live, desired)
	labels := live.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range desired.GetLabels() {
		labels[k] = v
	}
	live.SetLabels(labels)
	if err := controllerutil.SetControllerReference(gw, live, r.Scheme); err != nil {
		return zero, fmt.Errorf("set owner of %s %s: %w", kind, live.GetName(), err)
	}
	if equality.Semantic.DeepEqual(before, live) {
		return live, nil
	}
	if err := r.Update(ctx, live); err != nil {
		return zero, fmt.Errorf("update %s %s: %w", kind, live.GetName(), err)
	}
	r.Recorder.Eventf(gw, live, corev1.EventTypeNormal, "Updated", "Update", "Updated %s %s to match the spec", kind, live.GetName())
	return live, nil
}

// deleteOwned deletes the object named like obj when gw controls it (an HPA
// after autoscaling was turned off, a PDB after scaling down to one pod).
func (r *PresenceGatewayReconciler) deleteOwned(ctx context.Context, gw *presencev1alpha1.PresenceGateway, kind string, obj client.Object) error {
	if err := r.Get(ctx, client.ObjectKey{Namespace: gw.Namespace, Name: gw.Name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get %s %s: %w", kind, gw.Name, err)
	}
	if owner := metav1.GetControllerOf(obj); owner == nil || owner.UID != gw.UID {
		return nil // not ours: leave it alone
	}
	if err := r.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s: %w", kind, gw.Name, err)
	}
	r.Recorder.Eventf(gw, obj, corev1.EventTypeNormal, "Deleted", "Delete", "Deleted %s %s: the spec no longer needs it", kind, gw.Name)
	return nil
}

// mergeDeployment copies what the operator owns from desired into live.
// With autoscaling, live's replicas are the HPA's and are never touched.
func mergeDeployment(autoscaling bool) func(live, desired *appsv1.Deployment) {
	return func(live, desired *appsv1.Deployment) {
		if !autoscaling {
			live.Spec.Replicas = desired.Spec.Replicas
		}
		if !equality.Semantic.DeepDerivative(desired.Spec.Strategy, live.Spec.Strategy) {
			live.Spec.Strategy = desired.Spec.Strategy
		}
		// DeepDerivative ignores fields desired leaves empty, so the API
		// server's defaults (imagePullPolicy, probe thresholds, ...) are not
		// seen as drift, while any field the operator sets is compared. It
		// also ignores items appended to a live list, which templateListsGrew
		// catches: the operator owns the whole list of containers, env,
		// volumes and mounts, and the API server never appends to them.
		if !equality.Semantic.DeepDerivative(desired.Spec.Template, live.Spec.Template) ||
			templateListsGrew(&desired.Spec.Template.Spec, &live.Spec.Template.Spec) {
			template := *desired.Spec.Template.DeepCopy()
			if v, ok := live.Spec.Template.Annotations[restartedAtAnnotation]; ok {
				template.Annotations[restartedAtAnnotation] = v
			}
			live.Spec.Template = template
		}
	}
}

// templateListsGrew reports whether live has more items than desired in a
// list of the pod template that the operator owns whole (someone's
// `kubectl set env` or an added sidecar), which DeepDerivative does not see.
func templateListsGrew(desired, live *corev1.PodSpec) bool {
	if len(live.Containers) != len(desired.Containers) || len(live.InitContainers) != len(desired.InitContainers) ||
		len(live.Volumes) != len(desired.Volumes) {
		return true
	}
	for i := range desired.Containers {
		d, l := &desired.Containers[i], &live.Containers[i]
		if len(l.Env) != len(d.Env) || len(l.EnvFrom) != len(d.EnvFrom) || len(l.VolumeMounts) != len(d.VolumeMounts) ||
			len(l.Ports) != len(d.Ports) || len(l.Args) != len(d.Args) || len(l.Command) != len(d.Command) {
			return true
		}
	}
	return false
}

// mergeService copies type, selector, ports and annotations, keeping the
// fields the API server allocated (clusterIP, nodePorts).
func mergeService(live, desired *corev1.Service) {
	for k, v := range desired.Annotations {
		if live.Annotations == nil {
			live.Annotations = map[string]string{}
		}
		live.Annotations[k] = v
	}
	live.Spec.Type = desired.Spec.Type
	live.Spec.Selector = desired.Spec.Selector
	ports := make([]corev1.ServicePort, len(desired.Spec.Ports))
	copy(ports, desired.Spec.Ports)
	if desired.Spec.Type != corev1.ServiceTypeClusterIP {
		for i := range ports {
			for _, lp := range live.Spec.Ports {
				if lp.Name == ports[i].Name {
					ports[i].NodePort = lp.NodePort
				}
			}
		}
	}
	if !equality.Semantic.DeepDerivative(ports, live.Spec.Ports) || len(ports) != len(live.Spec.Ports) {
		live.Spec.Ports = ports
	}
	if desired.Spec.Type == corev1.ServiceTypeClusterIP {
		for i := range live.Spec.Ports {
			live.Spec.Ports[i].NodePort = 0
		}
	}
}
