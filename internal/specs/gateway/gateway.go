// Package gateway renders the Kubernetes objects of a PresenceGateway: its
// Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget. The
// builders are pure functions of the PresenceGateway and what it references;
// the controller only compares what they return with the cluster and writes.
package gateway

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwconfig "github.com/presencekit/presence-operator/gateway/config"
)

// The gateway pods' fixed contract (docs/architecture.md, "The gateway").
const (
	// ContainerName is the gateway container of the pod template.
	ContainerName = "gateway"
	// MetricsPort serves /metrics (and /debug/pprof when enabled) in the pod.
	MetricsPort = gwconfig.DefaultMetricsPort
	metricsPath = "/metrics"

	// shutdownGrace is SHUTDOWN_GRACE; the pod's termination grace period
	// leaves terminationSlack on top so the kubelet never SIGKILLs a drain.
	shutdownGrace    = gwconfig.DefaultShutdownGrace
	terminationSlack = 10 * time.Second

	redisAuthVolume     = "redis-auth"
	redisAuthMountPath  = "/etc/presence/redis"
	redisNodesVolume    = "redis-nodes"
	redisNodesMountPath = "/etc/presence/redis-nodes"
	redisCAVolume       = "redis-tls-ca"
	redisCAMountPath    = "/etc/presence/redis-tls"
	redisCAFileName     = "ca.crt"
	jwtVolume           = "jwt"
	jwtMountPath        = "/etc/presence/jwt"
	jwtFileName         = "secret"
	jwtKeyVolume        = "jwt-public-key"
	jwtKeyMountPath     = "/etc/presence/jwt-public-key"
	jwtKeyFileName      = "key.pem"
	tmpVolume           = "tmp"

	// gatewayUID runs the gateway as a fixed non-root user, so Secret files
	// (mode 0440, group fsGroup) are readable whatever the image's USER is.
	gatewayUID = 65532

	defaultReplicas            = 2
	defaultMinReplicas         = 2
	defaultCPUTargetPercentage = 80
	defaultPresenceTTL         = gwconfig.DefaultPresenceTTL
	defaultHeartbeat           = gwconfig.DefaultHeartbeatInterval
	defaultWSPort              = gwconfig.DefaultWSPort
	defaultMaxPayloadBytes     = gwconfig.DefaultMaxPayloadBytes
	defaultServicePort         = 80

	// connectionsMetric is the gateway gauge the HPA's Pods metric reads.
	connectionsMetric = "presence_gateway_connections"
)

// Keys of the Secret a RedisCluster's spec.auth.secretRef names.
const (
	SecretKeyUsername = "username"
	SecretKeyPassword = "password"
)

// Deps is what a PresenceGateway's pods depend on outside the
// PresenceGateway itself, resolved by the reconciler.
type Deps struct {
	// Redis is the referenced RedisCluster (never nil when rendering).
	Redis *presencev1alpha1.RedisCluster
	// RedisAuth is the RedisCluster's credentials Secret, nil without
	// spec.auth. The reconciler checks it exists; the pods mount it, so
	// neither its content nor its version is part of what is rendered.
	RedisAuth *corev1.Secret
	// JWT is the Secret of spec.auth.jwtSecretRef, nil without it; mounted
	// like RedisAuth.
	JWT *corev1.Secret
	// PlatformAssignsIDs is set on OpenShift (the cluster serves
	// security.openshift.io): its restricted SCC gives each namespace a
	// UID range and assigns runAsUser and fsGroup from it, refusing pods
	// that pin other values, so the pods leave them unset.
	PlatformAssignsIDs bool
}

// JWTPublicKeyFile is where the pods find the key of
// spec.auth.jwtPublicKeyRef (AUTH_JWT_PUBLIC_KEY_FILE).
const JWTPublicKeyFile = jwtKeyMountPath + "/" + jwtKeyFileName

// SelectorLabels select the pods of one PresenceGateway; they never change,
// because a Deployment's selector is immutable.
func SelectorLabels(gw *presencev1alpha1.PresenceGateway) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "presence-gateway",
		"app.kubernetes.io/instance": gw.Name,
	}
}

// ObjectLabels label every object the operator creates for gw.
func ObjectLabels(gw *presencev1alpha1.PresenceGateway) map[string]string {
	l := SelectorLabels(gw)
	l["app.kubernetes.io/component"] = "gateway"
	l["app.kubernetes.io/managed-by"] = "presence-operator" // the operator's cache selects its objects by this label
	return l
}

// RedisNodes is the seed node list of a RedisCluster that the gateways read
// (REDIS_NODES_FILE, from the ConfigMap RedisNodesConfigMap): the seed nodes the
// user gave (stable names reachable from the pods, short in-cluster names
// qualified with the RedisCluster's namespace so that they mean the same to
// the operator's check), or, without them, the nodes the cluster announced.
func RedisNodes(rc *presencev1alpha1.RedisCluster) []string {
	return rc.SeedNodes()
}

// Endpoint is the in-cluster URL of gw's Service.
func Endpoint(gw *presencev1alpha1.PresenceGateway) string {
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

// JWTSecretKey is the key of spec.auth.jwtSecretRef's Secret that holds the
// HS256 secret; gw must have spec.auth.jwtSecretRef.
func JWTSecretKey(gw *presencev1alpha1.PresenceGateway) string {
	if k := gw.Spec.Auth.JWTSecretRef.Key; k != "" {
		return k
	}
	return "secret"
}
