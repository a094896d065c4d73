package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwconfig "github.com/presencekit/presence-operator/gateway/config"
)

// ConfigHash fingerprints what the pods read only at start and that is not
// visible in the pod template: the Redis nodes and which version of each
// Secret they mount. A Secret is identified by its UID and resourceVersion,
// never by its content: the annotation is readable by anyone who may view
// the Deployment, and a hash of a weak key could be searched offline.
func ConfigHash(deps Deps) string {
	h := sha256.New()
	fmt.Fprintf(h, "redis-nodes=%s\n", strings.Join(RedisNodes(deps.Redis), ","))
	for _, s := range []struct {
		name   string
		secret *corev1.Secret
	}{{"redis-auth", deps.RedisAuth}, {"jwt", deps.JWT}} {
		if s.secret == nil {
			continue
		}
		fmt.Fprintf(h, "%s=%s/%s\n", s.name, s.secret.UID, s.secret.ResourceVersion)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Env is the gateway container's environment: the configuration the
// spec implies, then the user's extra variables.
func Env(gw *presencev1alpha1.PresenceGateway, deps Deps) []corev1.EnvVar {
	spec := gw.Spec
	ttl := defaultPresenceTTL
	if spec.Presence.TTL != nil {
		ttl = spec.Presence.TTL.Duration
	}
	heartbeat := defaultHeartbeat
	if spec.Presence.HeartbeatInterval != nil {
		heartbeat = spec.Presence.HeartbeatInterval.Duration
	}
	payload := spec.Websocket.MaxPayloadBytes
	if payload == 0 {
		payload = defaultMaxPayloadBytes
	}
	env := []corev1.EnvVar{
		{Name: gwconfig.EnvWSPort, Value: strconv.Itoa(int(wsPort(gw)))},
		{Name: gwconfig.EnvMetricsPort, Value: strconv.Itoa(MetricsPort)},
		{Name: gwconfig.EnvRedisNodes, Value: strings.Join(RedisNodes(deps.Redis), ",")},
		{Name: gwconfig.EnvPresenceTTL, Value: ttl.String()},
		{Name: gwconfig.EnvHeartbeatInterval, Value: heartbeat.String()},
		{Name: gwconfig.EnvMaxPayloadBytes, Value: strconv.Itoa(int(payload))},
		{Name: gwconfig.EnvShutdownGrace, Value: shutdownGrace.String()},
	}
	if n := ptr.Deref(spec.Websocket.MaxConnectionsPerPod, 0); n > 0 {
		env = append(env, corev1.EnvVar{Name: gwconfig.EnvMaxConnections, Value: strconv.Itoa(int(n))})
	}
	if len(spec.Websocket.AllowedOrigins) > 0 {
		env = append(env, corev1.EnvVar{Name: gwconfig.EnvAllowedOrigins, Value: strings.Join(spec.Websocket.AllowedOrigins, ",")})
	}
	if rc := deps.Redis; rc.Spec.Auth != nil {
		// The username is read through a reference and the password from a
		// mounted file: no credential appears in the Deployment.
		env = append(env,
			corev1.EnvVar{Name: gwconfig.EnvRedisUsername, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: rc.Spec.Auth.SecretRef.Name},
				Key:                  SecretKeyUsername,
				Optional:             ptr.To(true),
			}}},
			corev1.EnvVar{Name: gwconfig.EnvRedisPasswordFile, Value: redisAuthMountPath + "/" + SecretKeyPassword},
		)
	}
	if spec.Auth != nil && spec.Auth.JWTSecretRef != nil {
		// The gateway reads the JWT secret only from AUTH_JWT_SECRET (it has
		// no _FILE form), so it comes through a Secret reference: the value
		// is in the process environment but never in the Deployment.
		env = append(env, corev1.EnvVar{Name: gwconfig.EnvAuthJWTSecret, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: spec.Auth.JWTSecretRef.Name},
			Key:                  JWTSecretKey(gw),
		}}})
	}
	return append(env, spec.Env...)
}

// Deployment renders the gateway Deployment of gw.
func Deployment(gw *presencev1alpha1.PresenceGateway, deps Deps, image string) *appsv1.Deployment {
	spec := gw.Spec
	podLabels := maps.Clone(spec.PodLabels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, ObjectLabels(gw)) // ours win: the selector must keep matching

	podAnnotations := maps.Clone(spec.PodAnnotations)
	if podAnnotations == nil {
		podAnnotations = map[string]string{}
	}
	maps.Copy(podAnnotations, map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(MetricsPort),
		"prometheus.io/path":   metricsPath,
		ConfigHashAnnotation:   ConfigHash(deps),
	})

	volumes := []corev1.Volume{{Name: tmpVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mounts := []corev1.VolumeMount{{Name: tmpVolume, MountPath: "/tmp"}}
	if rc := deps.Redis; rc.Spec.Auth != nil {
		volumes = append(volumes, corev1.Volume{Name: redisAuthVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  rc.Spec.Auth.SecretRef.Name,
			DefaultMode: ptr.To[int32](0o440),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: redisAuthVolume, MountPath: redisAuthMountPath, ReadOnly: true})
	}

	// Every field of the probes is set, the API server's defaults included
	// (successThreshold 1, scheme HTTP): the controller compares the values
	// it applied with DeepDerivative, which skips empty strings and nil
	// pointers but compares integers, so a 0 left for the server to default
	// to 1 would look like a difference on every reconcile and send an apply
	// that changes nothing.
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString("ws"), Scheme: corev1.URISchemeHTTP,
			}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			SuccessThreshold: 1,
			FailureThreshold: failures,
		}
	}

	container := corev1.Container{
		Name:            ContainerName,
		Image:           image,
		ImagePullPolicy: spec.ImagePullPolicy,
		Ports: []corev1.ContainerPort{
			{Name: "ws", ContainerPort: wsPort(gw), Protocol: corev1.ProtocolTCP},
			{Name: "metrics", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
		},
		Env:            Env(gw, deps),
		Resources:      spec.Resources,
		ReadinessProbe: probe("/readyz", 5, 2),
		LivenessProbe:  probe("/healthz", 10, 3),
		VolumeMounts:   mounts,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To[int64](gatewayUID),
			RunAsGroup:               ptr.To[int64](gatewayUID),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}

	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: gw.Name, Namespace: gw.Namespace, Labels: ObjectLabels(gw)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(desiredReplicas(gw)),
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(gw)},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				// Never fewer ready gateways than asked for during a rollout:
				// clients of a removed pod reconnect to the others.
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromString("25%")),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{container},
					Volumes:                       volumes,
					TerminationGracePeriodSeconds: ptr.To(int64((shutdownGrace + terminationSlack) / time.Second)),
					NodeSelector:                  spec.NodeSelector,
					Tolerations:                   spec.Tolerations,
					Affinity:                      spec.Affinity,
					TopologySpreadConstraints:     spec.TopologySpreadConstraints,
					ImagePullSecrets:              spec.ImagePullSecrets,
					PriorityClassName:             spec.PriorityClassName,
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						FSGroup:        ptr.To[int64](gatewayUID),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
				},
			},
		},
	}
}
