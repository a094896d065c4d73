package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

// Fixtures of the PresenceGateway tests that need no cluster.

func testGateway(mutate func(*presencev1alpha1.PresenceGateway)) *presencev1alpha1.PresenceGateway {
	gw := &presencev1alpha1.PresenceGateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "chat", Name: "chat"},
		Spec:       presencev1alpha1.PresenceGatewaySpec{Redis: presencev1alpha1.RedisSpec{ClusterRef: presencev1alpha1.LocalRef{Name: "presence-redis"}}},
	}
	if mutate != nil {
		mutate(gw)
	}
	return gw
}

func testDeps(mutate func(*gwspecs.Deps)) gwspecs.Deps {
	deps := gwspecs.Deps{Redis: &presencev1alpha1.RedisCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "chat", Name: "presence-redis"},
		Spec: presencev1alpha1.RedisClusterSpec{External: &presencev1alpha1.ExternalRedisCluster{
			Nodes: []string{"redis-0.redis:6379", "redis-1.redis:6379"}}},
	}}
	if mutate != nil {
		mutate(&deps)
	}
	return deps
}

func withAuth(d *gwspecs.Deps) {
	d.Redis.Spec.Auth = &presencev1alpha1.RedisAuth{SecretRef: presencev1alpha1.LocalRef{Name: "redis-auth"}}
	d.RedisAuth = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{UID: "redis-auth-uid", ResourceVersion: "100"},
		Data: map[string][]byte{"username": []byte("u"), "password": []byte("pw-1")}}
}
