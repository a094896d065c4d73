package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// The gateway pods' fixed contract (see DESIGN.md, "The gateway").
const (
	gatewayContainerName = "gateway"
	metricsPort          = 9090
	metricsPath          = "/metrics"

	// shutdownGrace is SHUTDOWN_GRACE; the pod's termination grace period
	// leaves terminationSlack on top so the kubelet never SIGKILLs a drain.
	shutdownGrace    = 25 * time.Second
	terminationSlack = 10 * time.Second

	redisAuthVolume    = "redis-auth"
	redisAuthMountPath = "/etc/presence/redis"
	tmpVolume          = "tmp"

	// gatewayUID runs the gateway as a fixed non-root user, so Secret files
	// (mode 0440, group fsGroup) are readable whatever the image's USER is.
	gatewayUID = 65532

	// ConfigHashAnnotation on the pod template changes whenever something
	// the pods read only at start changes (REDIS_NODES, the Redis
	// credentials, the JWT secret): a new value rolls the pods.
	ConfigHashAnnotation = "presence.presencekit.io/config-hash"

	defaultReplicas            = 2
	defaultMinReplicas         = 2
	defaultCPUTargetPercentage = 80
	defaultPresenceTTL         = 60 * time.Second
	defaultHeartbeat           = 20 * time.Second
	defaultWSPort              = 8080
	defaultMaxPayloadBytes     = 4096
	defaultServicePort         = 80

	// connectionsMetric is the gateway gauge the HPA's Pods metric reads.
	connectionsMetric = "presence_gateway_connections"
)

// gatewayDeps is what a PresenceGateway's pods depend on outside the
// PresenceGateway itself, resolved by the reconciler.
type gatewayDeps struct {
	// redis is the referenced RedisCluster (never nil when rendering).
	redis *presencev1alpha1.RedisCluster
	// redisAuth is the RedisCluster's credentials Secret, nil without spec.auth.
	redisAuth *corev1.Secret
	// jwt is the Secret of spec.auth.jwtSecretRef, nil without it.
	jwt *corev1.Secret
}

// selectorLabels select the pods of one PresenceGateway; they never change,
// because a Deployment's selector is immutable.
func selectorLabels(gw *presencev1alpha1.PresenceGateway) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "presence-gateway",
		"app.kubernetes.io/instance": gw.Name,
	}
}

// objectLabels label every object the operator creates for gw.
func objectLabels(gw *presencev1alpha1.PresenceGateway) map[string]string {
	l := selectorLabels(gw)
	l["app.kubernetes.io/component"] = "gateway"
	l["app.kubernetes.io/managed-by"] = "presence-operator"
	return l
}

// redisNodes is the REDIS_NODES list of a RedisCluster: the seed nodes the
// user gave (stable names reachable from the pods), or, without them, the
// nodes the cluster announced.
func redisNodes(rc *presencev1alpha1.RedisCluster) []string {
	if rc.Spec.External != nil && len(rc.Spec.External.Nodes) > 0 {
		return slices.Clone(rc.Spec.External.Nodes)
	}
	return slices.Clone(rc.Status.Nodes)
}

// endpoint is the in-cluster URL of gw's Service.
func endpoint(gw *presencev1alpha1.PresenceGateway) string {
	return fmt.Sprintf("ws://%s.%s.svc:%d", gw.Name, gw.Namespace, servicePort(gw))
}

func servicePort(gw *presencev1alpha1.PresenceGateway) int32 {
	if gw.Spec.Service.Port != 0 {
		return gw.Spec.Service.Port
	}
	return defaultServicePort
}

func wsPort(gw *presencev1alpha1.PresenceGateway) int32 {
	if gw.Spec.Websocket.Port != 0 {
		return gw.Spec.Websocket.Port
	}
	return defaultWSPort
}

// desiredReplicas is the Deployment size the spec asks for: spec.replicas
// without autoscaling, minReplicas with it (used only when the Deployment is
// created; afterwards the HPA owns the live count).
func desiredReplicas(gw *presencev1alpha1.PresenceGateway) int32 {
	if as := gw.Spec.Autoscaling; as != nil {
		return ptr.Deref(as.MinReplicas, defaultMinReplicas)
	}
	return ptr.Deref(gw.Spec.Replicas, defaultReplicas)
}

// maxPossibleReplicas is the largest size the gateway can reach.
func maxPossibleReplicas(gw *presencev1alpha1.PresenceGateway) int32 {
	if as := gw.Spec.Autoscaling; as != nil {
		return as.MaxReplicas
	}
	return ptr.Deref(gw.Spec.Replicas, defaultReplicas)
}

// configHash fingerprints what the pods read only at start and that is not
// visible in the pod template: the Redis nodes and the content of the
// Secrets. Secret data is hashed, never copied.
func configHash(deps gatewayDeps) string {
	h := sha256.New()
	fmt.Fprintf(h, "redis-nodes=%s\n", strings.Join(redisNodes(deps.redis), ","))
	for _, s := range []struct {
		name   string
		secret *corev1.Secret
	}{{"redis-auth", deps.redisAuth}, {"jwt", deps.jwt}} {
		if s.secret == nil {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(s.secret.Data)) {
			fmt.Fprintf(h, "%s/%s=%d:", s.name, k, len(s.secret.Data[k]))
			h.Write(s.secret.Data[k])
			h.Write([]byte{'\n'})
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// gatewayEnv is the gateway container's environment: the configuration the
// spec implies, then the user's extra variables.
func gatewayEnv(gw *presencev1alpha1.PresenceGateway, deps gatewayDeps) []corev1.EnvVar {
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
		{Name: "WS_PORT", Value: strconv.Itoa(int(wsPort(gw)))},
		{Name: "METRICS_PORT", Value: strconv.Itoa(metricsPort)},
		{Name: "REDIS_NODES", Value: strings.Join(redisNodes(deps.redis), ",")},
		{Name: "PRESENCE_TTL", Value: ttl.String()},
		{Name: "HEARTBEAT_INTERVAL", Value: heartbeat.String()},
		{Name: "WS_MAX_PAYLOAD_BYTES", Value: strconv.Itoa(int(payload))},
		{Name: "SHUTDOWN_GRACE", Value: shutdownGrace.String()},
	}
	if n := ptr.Deref(spec.Websocket.MaxConnectionsPerPod, 0); n > 0 {
		env = append(env, corev1.EnvVar{Name: "MAX_CONNECTIONS", Value: strconv.Itoa(int(n))})
	}
	if len(spec.Websocket.AllowedOrigins) > 0 {
		env = append(env, corev1.EnvVar{Name: "ALLOWED_ORIGINS", Value: strings.Join(spec.Websocket.AllowedOrigins, ",")})
	}
	if rc := deps.redis; rc.Spec.Auth != nil {
		// The username is read through a reference and the password from a
		// mounted file: no credential appears in the Deployment.
		env = append(env,
			corev1.EnvVar{Name: "REDIS_USERNAME", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: rc.Spec.Auth.SecretRef.Name},
				Key:                  secretKeyUsername,
				Optional:             ptr.To(true),
			}}},
			corev1.EnvVar{Name: "REDIS_PASSWORD_FILE", Value: redisAuthMountPath + "/" + secretKeyPassword},
		)
	}
	if spec.Auth != nil && spec.Auth.JWTSecretRef != nil {
		// The gateway reads the JWT secret only from AUTH_JWT_SECRET (it has
		// no _FILE form), so it comes through a Secret reference: the value
		// is in the process environment but never in the Deployment.
		env = append(env, corev1.EnvVar{Name: "AUTH_JWT_SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: spec.Auth.JWTSecretRef.Name},
			Key:                  jwtSecretKey(gw),
		}}})
	}
	return append(env, spec.Env...)
}

// desiredDeployment renders the gateway Deployment of gw.
func desiredDeployment(gw *presencev1alpha1.PresenceGateway, deps gatewayDeps, image string) *appsv1.Deployment {
	spec := gw.Spec
	podLabels := maps.Clone(spec.PodLabels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, objectLabels(gw)) // ours win: the selector must keep matching

	podAnnotations := maps.Clone(spec.PodAnnotations)
	if podAnnotations == nil {
		podAnnotations = map[string]string{}
	}
	maps.Copy(podAnnotations, map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(metricsPort),
		"prometheus.io/path":   metricsPath,
		ConfigHashAnnotation:   configHash(deps),
	})

	volumes := []corev1.Volume{{Name: tmpVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mounts := []corev1.VolumeMount{{Name: tmpVolume, MountPath: "/tmp"}}
	if rc := deps.redis; rc.Spec.Auth != nil {
		volumes = append(volumes, corev1.Volume{Name: redisAuthVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  rc.Spec.Auth.SecretRef.Name,
			DefaultMode: ptr.To[int32](0o440),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: redisAuthVolume, MountPath: redisAuthMountPath, ReadOnly: true})
	}

	// Every field of the probes is set, the API server's defaults included
	// (successThreshold 1, scheme HTTP): mergeDeployment compares with
	// DeepDerivative, which skips empty strings and nil pointers but compares
	// integers, so a 0 left for the server to default to 1 would look like
	// drift on every reconcile and cause an Update that changes nothing.
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
		Name:            gatewayContainerName,
		Image:           image,
		ImagePullPolicy: spec.ImagePullPolicy,
		Ports: []corev1.ContainerPort{
			{Name: "ws", ContainerPort: wsPort(gw), Protocol: corev1.ProtocolTCP},
			{Name: "metrics", ContainerPort: metricsPort, Protocol: corev1.ProtocolTCP},
		},
		Env:            gatewayEnv(gw, deps),
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
		ObjectMeta: metav1.ObjectMeta{Name: gw.Name, Namespace: gw.Namespace, Labels: objectLabels(gw)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(desiredReplicas(gw)),
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(gw)},
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

func jwtSecretKey(gw *presencev1alpha1.PresenceGateway) string {
	if k := gw.Spec.Auth.JWTSecretRef.Key; k != "" {
		return k
	}
	return "secret"
}

// desiredService renders the Service in front of gw's pods.
func desiredService(gw *presencev1alpha1.PresenceGateway) *corev1.Service {
	svcType := gw.Spec.Service.Type
	if svcType == "" {
		svcType = corev1.ServiceTypeClusterIP
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:        gw.Name,
			Namespace:   gw.Namespace,
			Labels:      objectLabels(gw),
			Annotations: maps.Clone(gw.Spec.Service.Annotations),
		},
		Spec: corev1.ServiceSpec{
			Type:     svcType,
			Selector: selectorLabels(gw),
			Ports: []corev1.ServicePort{
				{Name: "ws", Port: servicePort(gw), TargetPort: intstr.FromString("ws"), Protocol: corev1.ProtocolTCP},
				{Name: "metrics", Port: metricsPort, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

// desiredHPA renders gw's HorizontalPodAutoscaler, or nil without
// spec.autoscaling.
func desiredHPA(gw *presencev1alpha1.PresenceGateway) *autoscalingv2.HorizontalPodAutoscaler {
	as := gw.Spec.Autoscaling
	if as == nil {
		return nil
	}
	var metrics []autoscalingv2.MetricSpec
	cpu := as.TargetCPUUtilizationPercentage
	if cpu == nil && as.TargetConnectionsPerPod == nil {
		cpu = ptr.To[int32](defaultCPUTargetPercentage)
	}
	if cpu != nil {
		metrics = append(metrics, autoscalingv2.MetricSpec{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name:   corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(*cpu)},
			},
		})
	}
	if n := as.TargetConnectionsPerPod; n != nil {
		metrics = append(metrics, autoscalingv2.MetricSpec{
			Type: autoscalingv2.PodsMetricSourceType,
			Pods: &autoscalingv2.PodsMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: connectionsMetric},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(int64(*n), resource.DecimalSI)},
			},
		})
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: gw.Name, Namespace: gw.Namespace, Labels: objectLabels(gw)},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: gw.Name},
			MinReplicas:    ptr.To(ptr.Deref(as.MinReplicas, defaultMinReplicas)),
			MaxReplicas:    as.MaxReplicas,
			Metrics:        metrics,
		},
	}
}

// desiredPDB renders gw's PodDisruptionBudget, or nil when at most one pod
// can run (a PDB there would only block node drains).
func desiredPDB(gw *presencev1alpha1.PresenceGateway) *policyv1.PodDisruptionBudget {
	if maxPossibleReplicas(gw) <= 1 {
		return nil
	}
	maxUnavailable := intstr.FromInt32(1)
	if mu := gw.Spec.PodDisruptionBudget.MaxUnavailable; mu != nil {
		maxUnavailable = *mu
	}
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: gw.Name, Namespace: gw.Namespace, Labels: objectLabels(gw)},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &maxUnavailable,
			Selector:       &metav1.LabelSelector{MatchLabels: selectorLabels(gw)},
		},
	}
}
