package gateway

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
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
		{Name: gwconfig.EnvRedisNodesFile, Value: redisNodesMountPath + "/" + RedisNodesKey},
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
	if auth := deps.Redis.Spec.Auth; auth != nil {
		// The password from the mounted Secret, re-read when it changes: no
		// credential in the Deployment or the process environment, and a
		// rotation needs no restart. The user is spec.auth.username (not a
		// secret), or else the Secret's optional username key (no file:
		// the default user); the reconciler refuses both at once.
		if auth.Username != "" {
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvRedisUsername, Value: auth.Username})
		} else {
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvRedisUsernameFile, Value: redisAuthMountPath + "/" + SecretKeyUsername})
		}
		env = append(env, corev1.EnvVar{Name: gwconfig.EnvRedisPasswordFile, Value: redisAuthMountPath + "/" + SecretKeyPassword})
	}
	if t := deps.Redis.Spec.TLS; t != nil && t.Enabled {
		env = append(env, corev1.EnvVar{Name: gwconfig.EnvRedisTLS, Value: "true"})
		if t.CARef != nil {
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvRedisTLSCAFile, Value: redisCAMountPath + "/" + redisCAFileName})
		}
		if t.ServerName != "" {
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvRedisTLSServerName, Value: t.ServerName})
		}
		if t.InsecureSkipVerify {
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvRedisTLSInsecureSkipVerify, Value: "true"})
		}
	}
	if a := spec.Auth; a != nil {
		// One key source (CEL allows no more), then the claim rules, which
		// need one.
		switch {
		case a.JWTSecretRef != nil:
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvAuthJWTSecretFile, Value: jwtMountPath + "/" + jwtFileName})
		case a.JWTPublicKeyRef != nil:
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvAuthJWTPublicKeyFile, Value: JWTPublicKeyFile})
		case a.JWKSURL != "":
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvAuthJWTJWKSURL, Value: a.JWKSURL})
		}
		if a.Audience != "" {
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvAuthJWTAudience, Value: a.Audience})
		}
		if a.Issuer != "" {
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvAuthJWTIssuer, Value: a.Issuer})
		}
		if a.RequireWatchClaim {
			env = append(env, corev1.EnvVar{Name: gwconfig.EnvAuthRequireWatchClaim, Value: "true"})
		}
	}
	return append(env, spec.Env...)
}

// redisCAVolumeSource is the volume of the RedisCluster's spec.tls.caRef
// (its one key as redisCAFileName), nil without one.
func redisCAVolumeSource(rc *presencev1alpha1.RedisCluster) *corev1.VolumeSource {
	t := rc.Spec.TLS
	if t == nil || !t.Enabled || t.CARef == nil {
		return nil
	}
	if ref := t.CARef.SecretKeyRef; ref != nil {
		return &corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  ref.Name,
			Items:       []corev1.KeyToPath{{Key: ref.Key, Path: redisCAFileName}},
			DefaultMode: ptr.To[int32](0o444),
		}}
	}
	if ref := t.CARef.ConfigMapKeyRef; ref != nil {
		return &corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name},
			Items:                []corev1.KeyToPath{{Key: ref.Key, Path: redisCAFileName}},
			DefaultMode:          ptr.To[int32](0o444),
		}}
	}
	return nil
}

// Deployment renders the gateway Deployment of gw.
func Deployment(gw *presencev1alpha1.PresenceGateway, deps Deps, image string) *appsv1.Deployment {
	spec := gw.Spec
	podLabels := map[string]string{}
	podAnnotations := map[string]string{}
	if t := spec.Template; t != nil {
		maps.Copy(podLabels, t.Metadata.Labels)
		maps.Copy(podAnnotations, t.Metadata.Annotations)
	}
	maps.Copy(podLabels, spec.PodLabels)
	maps.Copy(podLabels, ObjectLabels(gw)) // ours win: the selector must keep matching
	maps.Copy(podAnnotations, spec.PodAnnotations)
	maps.Copy(podAnnotations, map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(MetricsPort),
		"prometheus.io/path":   metricsPath,
	})

	// What may change while the pods run (the seed nodes, the Redis
	// credentials, the Redis CA, the JWT secret) is mounted as whole volumes, never with
	// subPath: the kubelet then updates the files in place, the gateway
	// re-reads them, and a change needs no new pod template, so no restart.
	volumes := []corev1.Volume{
		{Name: tmpVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: redisNodesVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RedisNodesConfigMapName(gw)},
			DefaultMode:          ptr.To[int32](0o444),
		}}},
	}
	mounts := []corev1.VolumeMount{
		{Name: tmpVolume, MountPath: "/tmp"},
		{Name: redisNodesVolume, MountPath: redisNodesMountPath, ReadOnly: true},
	}
	if rc := deps.Redis; rc.Spec.Auth != nil {
		volumes = append(volumes, corev1.Volume{Name: redisAuthVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  rc.Spec.Auth.SecretRef.Name,
			DefaultMode: ptr.To[int32](0o440),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: redisAuthVolume, MountPath: redisAuthMountPath, ReadOnly: true})
	}
	if v := redisCAVolumeSource(deps.Redis); v != nil {
		// Only the CA's key, as a fixed file name; re-read by the gateway
		// when the kubelet updates it (a CA rotation needs no restart).
		volumes = append(volumes, corev1.Volume{Name: redisCAVolume, VolumeSource: *v})
		mounts = append(mounts, corev1.VolumeMount{Name: redisCAVolume, MountPath: redisCAMountPath, ReadOnly: true})
	}
	if spec.Auth != nil && spec.Auth.JWTSecretRef != nil {
		// Only the key the spec names, as a fixed file name.
		volumes = append(volumes, corev1.Volume{Name: jwtVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  spec.Auth.JWTSecretRef.Name,
			Items:       []corev1.KeyToPath{{Key: JWTSecretKey(gw), Path: jwtFileName}},
			DefaultMode: ptr.To[int32](0o440),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: jwtVolume, MountPath: jwtMountPath, ReadOnly: true})
	}
	if spec.Auth != nil && spec.Auth.JWTPublicKeyRef != nil {
		// A public key is not secret, but it is mounted the same way: only
		// the key named, as a fixed file name, updated in place.
		volumes = append(volumes, jwtPublicKeyVolume(spec.Auth.JWTPublicKeyRef))
		mounts = append(mounts, corev1.VolumeMount{Name: jwtKeyVolume, MountPath: jwtKeyMountPath, ReadOnly: true})
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
			RunAsUser:                pinnedID(deps),
			RunAsGroup:               pinnedID(deps),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}

	dep := &appsv1.Deployment{
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
						FSGroup:        pinnedID(deps),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
				},
			},
		},
	}
	applyTemplate(&dep.Spec.Template.Spec, spec.Template)
	return dep
}

// applyTemplate merges spec.template's spec over the pod spec the operator
// built: what it adds (containers, init containers, volumes, mounts on the
// gateway container) goes after the operator's, and what it sets
// (service account, token mount, security context fields, grace period)
// replaces the operator's value. TemplateConflicts refuses names and paths
// that would collide, before this runs.
func applyTemplate(pod *corev1.PodSpec, t *presencev1alpha1.PodTemplate) {
	if t == nil {
		return
	}
	ts := t.Spec
	if ts.ServiceAccountName != "" {
		pod.ServiceAccountName = ts.ServiceAccountName
	}
	if ts.AutomountServiceAccountToken != nil {
		pod.AutomountServiceAccountToken = ptr.To(*ts.AutomountServiceAccountToken)
	}
	if ts.TerminationGracePeriodSeconds != nil {
		pod.TerminationGracePeriodSeconds = ptr.To(*ts.TerminationGracePeriodSeconds)
	}
	if sc := ts.SecurityContext; sc != nil {
		pod.SecurityContext = mergeSecurityContext(pod.SecurityContext, sc)
	}
	for _, c := range ts.InitContainers {
		pod.InitContainers = append(pod.InitContainers, *c.DeepCopy())
	}
	for _, c := range ts.Containers {
		pod.Containers = append(pod.Containers, *c.DeepCopy())
	}
	for _, v := range ts.Volumes {
		pod.Volumes = append(pod.Volumes, *v.DeepCopy())
	}
	for i := range pod.Containers {
		if pod.Containers[i].Name == ContainerName {
			for _, m := range ts.GatewayVolumeMounts {
				pod.Containers[i].VolumeMounts = append(pod.Containers[i].VolumeMounts, *m.DeepCopy())
			}
		}
	}
}

// mergeSecurityContext returns ours with every field the user set replaced
// by theirs: a JSON merge, which is what "each field set here replaces the
// operator's" means for a struct of optional fields.
func mergeSecurityContext(ours, theirs *corev1.PodSecurityContext) *corev1.PodSecurityContext {
	a, errA := json.Marshal(ours)
	b, errB := json.Marshal(theirs)
	merged := map[string]any{}
	if errA != nil || errB != nil || json.Unmarshal(a, &merged) != nil {
		return theirs.DeepCopy()
	}
	var over map[string]any
	if json.Unmarshal(b, &over) != nil {
		return theirs.DeepCopy()
	}
	maps.Copy(merged, over)
	raw, err := json.Marshal(merged)
	out := &corev1.PodSecurityContext{}
	if err != nil || json.Unmarshal(raw, out) != nil {
		return theirs.DeepCopy()
	}
	return out
}

// TemplateConflicts lists what spec.template would collide with in the pod
// the operator builds: a volume name or a gateway mount path the operator
// uses, or a container name taken twice. Nil when there is none.
func TemplateConflicts(gw *presencev1alpha1.PresenceGateway, deps Deps) []string {
	t := gw.Spec.Template
	if t == nil {
		return nil
	}
	built := Deployment(&presencev1alpha1.PresenceGateway{ObjectMeta: gw.ObjectMeta, Spec: withoutTemplate(gw.Spec)}, deps, "image").Spec.Template.Spec
	var problems []string
	volumes := map[string]bool{}
	for _, v := range built.Volumes {
		volumes[v.Name] = true
	}
	for _, v := range t.Spec.Volumes {
		if volumes[v.Name] {
			problems = append(problems, fmt.Sprintf("spec.template.spec.volumes: %q is the operator's volume", v.Name))
		}
	}
	paths := map[string]bool{}
	for _, m := range built.Containers[0].VolumeMounts {
		paths[m.MountPath] = true
	}
	for _, m := range t.Spec.GatewayVolumeMounts {
		if paths[m.MountPath] {
			problems = append(problems, fmt.Sprintf("spec.template.spec.gatewayVolumeMounts: %s is where the operator mounts its own volume", m.MountPath))
		}
	}
	names := map[string]bool{ContainerName: true}
	for _, c := range append(slices.Clone(t.Spec.InitContainers), t.Spec.Containers...) {
		if names[c.Name] {
			problems = append(problems, fmt.Sprintf("spec.template.spec: the container name %q is used twice", c.Name))
		}
		names[c.Name] = true
	}
	return problems
}

func withoutTemplate(s presencev1alpha1.PresenceGatewaySpec) presencev1alpha1.PresenceGatewaySpec {
	s.Template = nil
	return s
}

// jwtPublicKeyVolume mounts the one key of spec.auth.jwtPublicKeyRef as
// jwtKeyFileName, from its Secret or its ConfigMap.
func jwtPublicKeyVolume(ref *presencev1alpha1.KeySourceRef) corev1.Volume {
	v := corev1.Volume{Name: jwtKeyVolume}
	if r := ref.SecretKeyRef; r != nil {
		v.Secret = &corev1.SecretVolumeSource{
			SecretName:  r.Name,
			Items:       []corev1.KeyToPath{{Key: r.Key, Path: jwtKeyFileName}},
			DefaultMode: ptr.To[int32](0o440),
		}
		return v
	}
	r := ref.ConfigMapKeyRef
	v.ConfigMap = &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: r.Name},
		Items:                []corev1.KeyToPath{{Key: r.Key, Path: jwtKeyFileName}},
		DefaultMode:          ptr.To[int32](0o444),
	}
	return v
}

// pinnedID is the user and group the pods run as (and the fsGroup that makes
// the mounted Secrets readable), or nil where the platform assigns them
// (Deps.PlatformAssignsIDs).
func pinnedID(deps Deps) *int64 {
	if deps.PlatformAssignsIDs {
		return nil
	}
	return ptr.To[int64](gatewayUID)
}
