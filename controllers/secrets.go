package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// getSecret reads a referenced Secret that must hold key (from the API
// server: Secrets are not cached, see ClientOptions). A missing Secret or key
// is returned as a problem for the user to fix (SecretNotFound,
// InvalidSecret); field names the reference in its message. err is for
// failed API calls, which are retried.
func getSecret(ctx context.Context, c client.Reader, namespace, name, key, field string) (*corev1.Secret, *conditionResult, error) {
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonSecretNotFound,
				message: fmt.Sprintf("Secret %q (%s) not found in namespace %s", name, field, namespace)}, nil
		}
		return nil, nil, fmt.Errorf("get Secret %s: %w", name, err)
	}
	if _, ok := s.Data[key]; !ok {
		return nil, &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonInvalidSecret,
			message: fmt.Sprintf("Secret %q (%s) has no key %q", name, field, key)}, nil
	}
	return s, nil, nil
}

// getConfigMapKey checks that a referenced ConfigMap exists and holds key
// (in data or binaryData), through r, which must not be the manager's cache:
// that holds only the operator's own ConfigMaps. Like getSecret, a missing
// ConfigMap or key is a problem for the user, err a failed API call.
func getConfigMapKey(ctx context.Context, r client.Reader, namespace, name, key, field string) (*conditionResult, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonSecretNotFound,
				message: fmt.Sprintf("ConfigMap %q (%s) not found in namespace %s", name, field, namespace)}, nil
		}
		return nil, fmt.Errorf("get ConfigMap %s: %w", name, err)
	}
	_, inData := cm.Data[key]
	_, inBinary := cm.BinaryData[key]
	if !inData && !inBinary {
		return &conditionResult{status: metav1.ConditionFalse, reason: presencev1alpha1.ReasonInvalidSecret,
			message: fmt.Sprintf("ConfigMap %q (%s) has no key %q", name, field, key)}, nil
	}
	return nil, nil
}
