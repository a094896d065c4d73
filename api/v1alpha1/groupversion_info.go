// Package v1alpha1 holds the presence.presencekit.io/v1alpha1 API: the
// PresenceGateway and RedisCluster custom resources.
//
// +kubebuilder:object:generate=true
// +groupName=presence.presencekit.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the resources in this package.
	GroupVersion = schema.GroupVersion{Group: "presence.presencekit.io", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this package to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the kinds of this package.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&PresenceGateway{}, &PresenceGatewayList{},
		&RedisCluster{}, &RedisClusterList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
