package controllers

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

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
	d.RedisAuth = &corev1.Secret{Data: map[string][]byte{"username": []byte("u"), "password": []byte("pw-1")}}
}

func envMap(env []corev1.EnvVar) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range env {
		m[e.Name] = e
	}
	return m
}

func TestMergeDeploymentKeepsHPAReplicasAndDefaults(t *testing.T) {
	g := NewWithT(t)
	gw := testGateway(func(gw *presencev1alpha1.PresenceGateway) {
		gw.Spec.Autoscaling = &presencev1alpha1.AutoscalingSpec{MaxReplicas: 10}
	})
	desired := gwspecs.Deployment(gw, testDeps(nil), "img:1")
	live := desired.DeepCopy()
	live.Spec.Replicas = ptr.To[int32](7)
	live.Spec.Template.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent // an API server default
	live.Spec.Template.Annotations[restartedAtAnnotation] = "2026-01-01T00:00:00Z"
	before := live.DeepCopy()

	mergeDeployment(true)(live, desired)
	g.Expect(live).To(Equal(before), "defaults are not drift; the HPA's replicas stay")

	live.Spec.Template.Spec.Containers[0].Image = "other:2"
	mergeDeployment(true)(live, desired)
	g.Expect(live.Spec.Template.Spec.Containers[0].Image).To(Equal("img:1"))
	g.Expect(*live.Spec.Replicas).To(Equal(int32(7)))
	g.Expect(live.Spec.Template.Annotations).To(HaveKey(restartedAtAnnotation), "kubectl rollout restart survives drift correction")

	mergeDeployment(false)(live, desired)
	g.Expect(*live.Spec.Replicas).To(Equal(int32(2)), "without autoscaling spec.replicas wins")
}

func TestMergeDeploymentRemovesAddedListItems(t *testing.T) {
	tests := []struct {
		name  string
		drift func(spec *corev1.PodSpec)
	}{
		{"env var added", func(s *corev1.PodSpec) {
			s.Containers[0].Env = append(s.Containers[0].Env, corev1.EnvVar{Name: "DEBUG", Value: "1"})
		}},
		{"envFrom added", func(s *corev1.PodSpec) {
			s.Containers[0].EnvFrom = append(s.Containers[0].EnvFrom, corev1.EnvFromSource{Prefix: "X_"})
		}},
		{"sidecar added", func(s *corev1.PodSpec) {
			s.Containers = append(s.Containers, corev1.Container{Name: "sidecar", Image: "busybox"})
		}},
		{"init container added", func(s *corev1.PodSpec) {
			s.InitContainers = append(s.InitContainers, corev1.Container{Name: "init", Image: "busybox"})
		}},
		{"volume and mount added", func(s *corev1.PodSpec) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "extra"})
			s.Containers[0].VolumeMounts = append(s.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "extra", MountPath: "/x"})
		}},
		{"arg added", func(s *corev1.PodSpec) { s.Containers[0].Args = append(s.Containers[0].Args, "--debug") }},
		{"port added", func(s *corev1.PodSpec) {
			s.Containers[0].Ports = append(s.Containers[0].Ports, corev1.ContainerPort{Name: "debug", ContainerPort: 6060})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			desired := gwspecs.Deployment(testGateway(nil), testDeps(nil), "img:1")
			live := desired.DeepCopy()
			tt.drift(&live.Spec.Template.Spec)
			mergeDeployment(false)(live, desired)
			g.Expect(live.Spec.Template).To(Equal(desired.Spec.Template), "the operator owns the whole pod template")
		})
	}
}

func TestMergeServiceKeepsAllocatedFields(t *testing.T) {
	g := NewWithT(t)
	desired := gwspecs.Service(testGateway(func(gw *presencev1alpha1.PresenceGateway) { gw.Spec.Service.Type = corev1.ServiceTypeNodePort }))
	live := desired.DeepCopy()
	live.Spec.ClusterIP = "10.0.0.10"
	live.Spec.Ports[0].NodePort = 30080
	live.Spec.Ports[1].NodePort = 30090
	before := live.DeepCopy()
	mergeService(live, desired)
	g.Expect(live).To(Equal(before))

	live.Spec.Ports[0].Port = 1234
	mergeService(live, desired)
	g.Expect(live.Spec.Ports[0].Port).To(Equal(int32(80)))
	g.Expect(live.Spec.Ports[0].NodePort).To(Equal(int32(30080)))
	g.Expect(strings.Join([]string{live.Spec.ClusterIP}, "")).To(Equal("10.0.0.10"))
}
