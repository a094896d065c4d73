package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/client-go/util/csaupgrade"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayapply "sigs.k8s.io/gateway-api/applyconfiguration"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/typed"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// FieldManager is the server-side apply field manager of every object the
// operator owns. The fields in its managedFields entry are exactly what the
// PresenceGateway's spec says; a field dropped from the spec is dropped from
// the object, and other managers' fields (the HPA's spec.replicas, the
// restartedAt annotation of `kubectl rollout restart`) are never touched.
const FieldManager = "presence-operator"

// replicasHandoverManager owns a Deployment's spec.replicas while it passes
// from FieldManager to the HorizontalPodAutoscaler. Without it, the first
// apply that leaves replicas out would remove the field (FieldManager was
// its only owner) and the API server would reset the Deployment to one pod.
const replicasHandoverManager = "presence-operator-replicas-handover"

// applier applies desired objects with server-side apply, only when the
// live object differs from them, so that a reconcile that finds nothing to
// change sends no request at all.
type applier struct {
	client.Client
	scheme    *runtime.Scheme
	converter managedfields.TypeConverter
}

func newApplier(c client.Client, scheme *runtime.Scheme) *applier {
	return &applier{Client: c, scheme: scheme, converter: byGroupConverter{
		builtin:    applyconfigurations.NewTypeConverter(scheme),
		gatewayAPI: gatewayapply.NewTypeConverter(scheme),
		deduced:    managedfields.NewDeducedTypeConverter(),
	}}
}

// byGroupConverter turns objects into typed values with the schema of their
// API group: client-go's knows the built-in kinds only, the Gateway API's
// module ships its own for HTTPRoute. prometheus-operator's API module ships
// none, so a PodMonitor's schema is deduced from the object (maps merge by
// key, lists are atomic: exact for what the operator sets, one list of
// endpoints). A converter whose schema merged them all would need their
// OpenAPI models, which none exports.
type byGroupConverter struct {
	builtin, gatewayAPI, deduced managedfields.TypeConverter
}

func (c byGroupConverter) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	switch obj.GetObjectKind().GroupVersionKind().Group {
	case gatewayv1.GroupName:
		return c.gatewayAPI.ObjectToTyped(obj, opts...)
	case monitoringv1.SchemeGroupVersion.Group:
		return c.deduced.ObjectToTyped(obj, opts...)
	}
	return c.builtin.ObjectToTyped(obj, opts...)
}

func (c byGroupConverter) TypedToObject(v *typed.TypedValue) (runtime.Object, error) {
	if obj, err := c.builtin.TypedToObject(v); err == nil {
		return obj, nil
	}
	return c.gatewayAPI.TypedToObject(v)
}

// applyResult is what apply did.
type applyResult string

const (
	applyNone    applyResult = ""
	applyCreated applyResult = "Created"
	applyUpdated applyResult = "Updated"
)

// apply makes the object named like desired carry exactly desired's fields
// under FieldManager. desired is a complete object from the builders (its
// status and zero timestamps are not applied); live is an empty object of
// its type, filled with the object as it is after the call (what the write
// returned, or the cached object when nothing needed writing); when known,
// live already holds the object as the API server last returned it and is
// not read from the cache. With omitReplicas, spec.replicas is left to
// another manager.
func (a *applier) apply(ctx context.Context, gw *presencev1alpha1.PresenceGateway, desired, live client.Object, omitReplicas, known bool) (applyResult, error) {
	kind, err := a.kind(desired)
	if err != nil {
		return applyNone, err
	}
	if err := controllerutil.SetControllerReference(gw, desired, a.scheme); err != nil {
		return applyNone, fmt.Errorf("set owner of %s %s: %w", kind, desired.GetName(), err)
	}
	config, err := a.applyConfig(desired, omitReplicas)
	if err != nil {
		return applyNone, fmt.Errorf("render %s %s: %w", kind, desired.GetName(), err)
	}

	exists := true
	if known {
		exists = live.GetUID() != ""
	} else if err := a.Get(ctx, client.ObjectKeyFromObject(desired), live); err != nil {
		if !apierrors.IsNotFound(err) {
			return applyNone, fmt.Errorf("get %s %s: %w", kind, desired.GetName(), err)
		}
		exists = false
	}
	if exists {
		if owner := metav1.GetControllerOf(live); owner != nil && owner.UID != gw.UID {
			return applyNone, fmt.Errorf("%s %s already exists and is controlled by %s %s, not by this PresenceGateway", kind, live.GetName(), owner.Kind, owner.Name)
		}
		if err := a.upgradeManagedFields(ctx, live); err != nil {
			return applyNone, fmt.Errorf("move %s %s to server-side apply: %w", kind, live.GetName(), err)
		}
		same, err := a.upToDate(live, config)
		if err != nil {
			return applyNone, fmt.Errorf("compare %s %s: %w", kind, live.GetName(), err)
		}
		if same {
			return applyNone, nil
		}
	}
	before := live.GetResourceVersion()
	if err := a.applyAs(ctx, config, FieldManager, live); err != nil {
		return applyNone, fmt.Errorf("apply %s %s: %w", kind, desired.GetName(), err)
	}
	switch {
	case !exists:
		return applyCreated, nil
	case live.GetResourceVersion() != before:
		return applyUpdated, nil
	default:
		return applyNone, nil
	}
}

// applyAs sends config as manager, taking over conflicting fields (the
// operator is the authority on what it applies), and decodes the object the
// API server returned into into.
func (a *applier) applyAs(ctx context.Context, config *unstructured.Unstructured, manager string, into client.Object) error {
	u := config.DeepCopy()
	if err := a.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(manager), client.ForceOwnership); err != nil {
		return err
	}
	fresh, err := newObject(into, a.scheme)
	if err != nil {
		return err
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, fresh); err != nil {
		return err
	}
	// into may hold the cached object: replace it whole.
	reflect.ValueOf(into).Elem().Set(reflect.ValueOf(fresh).Elem())
	return nil
}

// newObject is an empty object of obj's type.
func newObject(obj client.Object, scheme *runtime.Scheme) (client.Object, error) {
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return nil, err
	}
	o, err := scheme.New(gvk)
	if err != nil {
		return nil, err
	}
	return o.(client.Object), nil
}

// applyConfig turns a builder's object into the apply configuration sent:
// its JSON without status and without null values (zero timestamps), and
// without spec.replicas when another manager owns them.
func (a *applier) applyConfig(obj client.Object, omitReplicas bool) (*unstructured.Unstructured, error) {
	gvk, err := apiutil.GVKForObject(obj, a.scheme)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	dropNulls(m)
	if omitReplicas {
		unstructured.RemoveNestedField(m, "spec", "replicas")
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

func dropNulls(m map[string]any) {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			dropNulls(v)
		case []any:
			for _, item := range v {
				if im, ok := item.(map[string]any); ok {
					dropNulls(im)
				}
			}
		}
	}
}

// strippedPaths are the fields the API server never records in a manager's
// field set (see k8s.io/apimachinery's managedfields stripMeta).
var strippedPaths = fieldpath.NewSet(
	fieldpath.MakePathOrDie("apiVersion"),
	fieldpath.MakePathOrDie("kind"),
	fieldpath.MakePathOrDie("metadata", "name"),
	fieldpath.MakePathOrDie("metadata", "namespace"),
)

// upToDate reports whether applying config would change nothing: the fields
// FieldManager owns in live are exactly config's fields (none to remove,
// none taken over by another manager), and live holds config's values.
// Values the API server fills in beside ours inside an atomic field (a
// fieldRef's apiVersion) are not a difference.
func (a *applier) upToDate(live client.Object, config *unstructured.Unstructured) (bool, error) {
	owned, err := managedSet(live.GetManagedFields(), FieldManager)
	if err != nil || owned == nil {
		return false, err
	}
	want, err := a.converter.ObjectToTyped(config)
	if err != nil {
		return false, err
	}
	wantSet, err := want.ToFieldSet()
	if err != nil {
		return false, err
	}
	if !wantSet.Difference(strippedPaths).Leaves().Equals(owned.Leaves()) {
		return false, nil
	}

	gvk := config.GroupVersionKind()
	liveObj := live.DeepCopyObject().(client.Object)
	liveObj.GetObjectKind().SetGroupVersionKind(gvk)
	liveTyped, err := a.converter.ObjectToTyped(liveObj)
	if err != nil {
		return false, err
	}
	extracted, ok := liveTyped.ExtractItems(owned.Leaves()).AsValue().Unstructured().(map[string]any)
	if !ok {
		return false, nil
	}
	got, err := a.scheme.New(gvk)
	if err != nil {
		return false, err
	}
	wantObj := got.DeepCopyObject()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(extracted, got); err != nil {
		return false, err
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(config.Object, wantObj); err != nil {
		return false, err
	}
	for _, o := range []runtime.Object{got, wantObj} {
		o.GetObjectKind().SetGroupVersionKind(gvk)
		m := o.(metav1.Object)
		m.SetName(config.GetName())
		m.SetNamespace(config.GetNamespace())
	}
	return equality.Semantic.DeepDerivative(wantObj, got), nil
}

// managedSet is the field set manager owns through apply on the object
// itself (not a subresource), nil when it owns nothing.
func managedSet(entries []metav1.ManagedFieldsEntry, manager string) (*fieldpath.Set, error) {
	for _, e := range entries {
		if e.Manager != manager || e.Operation != metav1.ManagedFieldsOperationApply || e.Subresource != "" || e.FieldsV1 == nil {
			continue
		}
		s := &fieldpath.Set{}
		if err := s.FromJSON(e.FieldsV1.GetRawReader()); err != nil {
			return nil, fmt.Errorf("decode the managed fields of %s: %w", manager, err)
		}
		return s, nil
	}
	return nil, nil
}

// ownsField reports whether manager's applied field set holds path.
func ownsField(obj client.Object, manager string, path ...any) (bool, error) {
	s, err := managedSet(obj.GetManagedFields(), manager)
	if err != nil || s == nil {
		return false, err
	}
	return s.Has(fieldpath.MakePathOrDie(path...)), nil
}

// upgradeManagedFields moves the fields that earlier operator versions
// wrote with Create and Update (recorded under the same manager name with
// operation Update) into FieldManager's apply entry, once, so that
// server-side apply can remove them when the spec no longer sets them.
func (a *applier) upgradeManagedFields(ctx context.Context, live client.Object) error {
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(live, sets.New(FieldManager), FieldManager)
	if err != nil || patch == nil {
		return err
	}
	if err := a.Patch(ctx, live, client.RawPatch("application/json-patch+json", patch)); err != nil {
		return err
	}
	return nil
}

func (a *applier) kind(obj client.Object) (string, error) {
	gvk, err := apiutil.GVKForObject(obj, a.scheme)
	if err != nil {
		return "", err
	}
	return gvk.Kind, nil
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
