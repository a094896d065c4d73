package v1alpha1_test

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// unstructuredGateway builds a PresenceGateway as raw JSON, to send values a
// typed client cannot (a malformed duration).
type unstructuredGateway struct {
	name, ttl string
}

func (u *unstructuredGateway) object() *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": presencev1alpha1.GroupVersion.String(),
		"kind":       "PresenceGateway",
		"metadata":   map[string]any{"namespace": "default", "name": u.name},
		"spec": map[string]any{
			"redis":    map[string]any{"clusterRef": map[string]any{"name": "presence-redis"}},
			"presence": map[string]any{"ttl": u.ttl},
		},
	}}
	return obj
}
