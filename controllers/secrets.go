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
