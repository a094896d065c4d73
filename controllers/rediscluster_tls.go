package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// caSource is where a RedisCluster's spec.tls.caRef points: the kind, the
// object and the key, for messages and for the reads.
type caSource struct {
	kind, name, key, field string
}

// caSourceOf is spec.tls.caRef of rc, nil when the cluster has no CA of
// its own (no TLS, or the system roots).
func caSourceOf(rc *presencev1alpha1.RedisCluster) *caSource {
	t := rc.Spec.TLS
	if t == nil || !t.Enabled || t.CARef == nil {
		return nil
	}
	if r := t.CARef.SecretKeyRef; r != nil {
		return &caSource{kind: "Secret", name: r.Name, key: r.Key, field: "spec.tls.caRef.secretKeyRef"}
	}
	if r := t.CARef.ConfigMapKeyRef; r != nil {
		return &caSource{kind: "ConfigMap", name: r.Name, key: r.Key, field: "spec.tls.caRef.configMapKeyRef"}
	}
	return nil
}

// caFromConfigMap says whether rc's CA is in a ConfigMap (which no watch
// reports).
func caFromConfigMap(rc *presencev1alpha1.RedisCluster) bool {
	src := caSourceOf(rc)
	return src != nil && src.kind == "ConfigMap"
}

// readCA reads the PEM bundle of spec.tls.caRef: a Secret through secrets
// (the API server: Secrets are not cached), a ConfigMap through configMaps
// (the API server too: the cache holds only the operator's own
// ConfigMaps). A missing object or key, or a bundle without a certificate,
// is a problem for the user (SecretNotFound, ConfigMapNotFound, InvalidCA);
// err is for failed API calls. owner names the referencing RedisCluster in
// messages ("" for the RedisCluster itself).
func readCA(ctx context.Context, secrets, configMaps client.Reader, namespace string, src *caSource, owner string) ([]byte, *conditionResult, error) {
	field := src.field
	if owner != "" {
		field = fmt.Sprintf("RedisCluster %q %s", owner, src.field)
	}
	var (
		data  []byte
		found bool
	)
	switch src.kind {
	case "Secret":
		s := &corev1.Secret{}
		if err := secrets.Get(ctx, client.ObjectKey{Namespace: namespace, Name: src.name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonSecretNotFound,
					fmt.Sprintf("Secret %q (%s) not found in namespace %s", src.name, field, namespace)}, nil
			}
			return nil, nil, fmt.Errorf("get Secret %s: %w", src.name, err)
		}
		data, found = s.Data[src.key]
	default:
		cm := &corev1.ConfigMap{}
		if err := configMaps.Get(ctx, client.ObjectKey{Namespace: namespace, Name: src.name}, cm); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonConfigMapNotFound,
					fmt.Sprintf("ConfigMap %q (%s) not found in namespace %s", src.name, field, namespace)}, nil
			}
			return nil, nil, fmt.Errorf("get ConfigMap %s: %w", src.name, err)
		}
		var s string
		if s, found = cm.Data[src.key]; found {
			data = []byte(s)
		} else {
			data, found = cm.BinaryData[src.key]
		}
	}
	if !found {
		return nil, &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonInvalidCA,
			fmt.Sprintf("%s %q (%s) has no key %q", src.kind, src.name, field, src.key)}, nil
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return nil, &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonInvalidCA,
			fmt.Sprintf("key %q of %s %q (%s) holds no PEM certificate", src.key, src.kind, src.name, field)}, nil
	}
	return data, nil, nil
}

// checkTLSConfig is the TLS configuration of a health check of rc, made
// afresh for each check so that a rotated CA counts at once: the gateways'
// own settings (REDIS_TLS_CA_FILE, REDIS_TLS_SERVER_NAME,
// REDIS_TLS_INSECURE_SKIP_VERIFY), nil without TLS. caPEM is the bundle of
// spec.tls.caRef (nil: the system roots).
func checkTLSConfig(rc *presencev1alpha1.RedisCluster, caPEM []byte) *tls.Config {
	t := rc.Spec.TLS
	if t == nil || !t.Enabled {
		return nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,         // empty: each node's host, set per dial
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the user's explicit, documented choice (tests only)
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		cfg.RootCAs = pool
	}
	return cfg
}

// isTLSError says whether err is a failed TLS handshake: a certificate that
// does not verify, or a peer that does not speak TLS (or speaks it to a
// client that does not).
func isTLSError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alert    tls.AlertError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		opErr    *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &record), errors.As(err, &alert),
		errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return true
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		return true
	}
	return false
}
