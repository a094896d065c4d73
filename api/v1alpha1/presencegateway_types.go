package v1alpha1

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// PresenceGatewaySpec is the desired state of a fleet of presence gateway pods.
//
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.autoscaling.minReplicas) || self.autoscaling.minReplicas >= 1",message="spec.autoscaling.minReplicas must be at least 1"
// +kubebuilder:validation:XValidation:rule="!(has(self.ingress) && has(self.httpRoute))",message="give one of spec.ingress and spec.httpRoute: both would expose the same Service twice"
type PresenceGatewaySpec struct {
	// Image is the gateway container image. Empty means the operator's
	// --gateway-image default.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// ImagePullPolicy of the gateway container (Always, IfNotPresent, Never).
	// Empty means the Kubernetes default for the image tag.
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// Replicas is the number of gateway pods when spec.autoscaling is not set
	// (the scale subresource changes it: kubectl scale pgw/NAME --replicas=N).
	// With spec.autoscaling the HorizontalPodAutoscaler owns the size and this
	// field is ignored.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Replicas *int32 `json:"replicas,omitempty"`

	// Autoscaling, when set, creates an autoscaling/v2 HorizontalPodAutoscaler
	// for the gateway Deployment.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Redis names the RedisCluster whose seed nodes the pods read (REDIS_NODES_FILE).
	Redis RedisSpec `json:"redis"`

	// Presence tunes how long a connection counts as online without a refresh.
	// +optional
	// +kubebuilder:default={}
	Presence PresenceSpec `json:"presence,omitempty"`

	// Websocket configures the client-facing listener.
	// +optional
	// +kubebuilder:default={}
	Websocket WebsocketSpec `json:"websocket,omitempty"`

	// Auth requires a JWT on every connection when set.
	// +optional
	Auth *AuthSpec `json:"auth,omitempty"`

	// Service configures the Service in front of the gateway pods.
	// +optional
	// +kubebuilder:default={}
	Service ServiceSpec `json:"service,omitempty"`

	// Ingress exposes the gateways outside the cluster through an Ingress
	// (named after the PresenceGateway) routing to the client Service.
	// +optional
	Ingress *IngressSpec `json:"ingress,omitempty"`

	// HTTPRoute exposes the gateways through the Gateway API instead: an
	// HTTPRoute (named after the PresenceGateway) attached to parentRefs and
	// routing to the client Service. Needs the Gateway API CRDs
	// (gateway.networking.k8s.io/v1) when the operator starts.
	// +optional
	HTTPRoute *HTTPRouteSpec `json:"httpRoute,omitempty"`

	// Monitoring has the operator create what Prometheus needs to scrape
	// the gateways.
	// +optional
	Monitoring *MonitoringSpec `json:"monitoring,omitempty"`

	// PodDisruptionBudget configures the PodDisruptionBudget created when more
	// than one gateway pod can run.
	// +optional
	// +kubebuilder:default={}
	PodDisruptionBudget PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitempty"`

	// Resources of the gateway container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// NodeSelector of the gateway pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations of the gateway pods.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// Affinity of the gateway pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// TopologySpreadConstraints of the gateway pods.
	// +optional
	// +listType=atomic
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// PodAnnotations are added to the gateway pods (beside the Prometheus
	// scrape annotations and the config hash the operator sets).
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`

	// PodLabels are added to the gateway pods. The selector labels
	// app.kubernetes.io/name and app.kubernetes.io/instance cannot be changed.
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`

	// Template is a partial pod template merged over the gateway pods the
	// operator builds: what the spec does not name (a sidecar, a volume, a
	// service account, the pod's security context). The operator keeps the
	// gateway container's name, image, command, ports, probes, environment
	// and container security context, and the selector labels: the
	// gateways' behaviour and the Services, probes and drain depend on them.
	// +optional
	Template *PodTemplate `json:"template,omitempty"`

	// ImagePullSecrets of the gateway pods.
	// +optional
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// PriorityClassName of the gateway pods.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// Env adds environment variables to the gateway container (for example
	// LOG_LEVEL, MESSAGE_RATE, OFFLINE_GRACE). Variables the operator sets
	// from the spec cannot be overridden here.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(e, !(e.name in ['WS_PORT', 'METRICS_PORT', 'REDIS_NODES', 'REDIS_NODES_FILE', 'REDIS_USERNAME', 'REDIS_USERNAME_FILE', 'REDIS_PASSWORD', 'REDIS_PASSWORD_FILE', 'REDIS_TLS', 'REDIS_TLS_CA_FILE', 'REDIS_TLS_SERVER_NAME', 'REDIS_TLS_INSECURE_SKIP_VERIFY', 'PRESENCE_TTL', 'HEARTBEAT_INTERVAL', 'WS_MAX_PAYLOAD_BYTES', 'MAX_CONNECTIONS', 'ALLOWED_ORIGINS', 'AUTH_JWT_SECRET', 'AUTH_JWT_SECRET_FILE', 'AUTH_JWT_PUBLIC_KEY_FILE', 'AUTH_JWT_JWKS_URL', 'AUTH_JWT_AUDIENCE', 'AUTH_JWT_ISSUER', 'AUTH_REQUIRE_WATCH_CLAIM', 'SHUTDOWN_GRACE']))",message="spec.env must not set a variable the operator derives from the spec (WS_PORT, METRICS_PORT, REDIS_*, PRESENCE_TTL, HEARTBEAT_INTERVAL, WS_MAX_PAYLOAD_BYTES, MAX_CONNECTIONS, ALLOWED_ORIGINS, AUTH_JWT_*, AUTH_REQUIRE_WATCH_CLAIM, SHUTDOWN_GRACE): use the matching spec field"
	Env []corev1.EnvVar `json:"env,omitempty"`
}

// AutoscalingSpec configures the HorizontalPodAutoscaler. Without any target,
// the HPA scales on 80% CPU.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.maxReplicas >= self.minReplicas",message="spec.autoscaling.maxReplicas must be greater than or equal to spec.autoscaling.minReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.keda) || has(self.targetConnectionsPerPod) || has(self.targetCPUUtilizationPercentage)",message="spec.autoscaling.keda needs spec.autoscaling.targetConnectionsPerPod (or targetCPUUtilizationPercentage): KEDA scales on those"
type AutoscalingSpec struct {
	// MinReplicas is the lower bound of the gateway pod count.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the upper bound of the gateway pod count.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas int32 `json:"maxReplicas"`

	// TargetCPUUtilizationPercentage is the average CPU utilisation (of the
	// container's request) the HPA aims at.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`

	// TargetConnectionsPerPod adds a Pods metric on the gateway's
	// presence_gateway_connections gauge (needs a custom metrics adapter
	// such as prometheus-adapter exposing it).
	// +optional
	// +kubebuilder:validation:Minimum=1
	TargetConnectionsPerPod *int32 `json:"targetConnectionsPerPod,omitempty"`

	// KEDA, when set, has the operator create a KEDA ScaledObject instead of
	// a HorizontalPodAutoscaler: KEDA reads presence_gateway_connections
	// straight from every gateway pod's /metrics (its metrics-api scaler,
	// through the <name>-metrics Service), so targetConnectionsPerPod works
	// with no Prometheus and no custom metrics adapter. Needs KEDA's CRDs
	// (keda.sh/v1alpha1) when the operator starts.
	// +optional
	KEDA *KEDASpec `json:"keda,omitempty"`

	// Behavior is the HPA's scaling behaviour. Each direction left out gets
	// the operator's default: scaleDown waits out a 5-minute
	// stabilization window and then removes at most one pod or 10% of them
	// (whichever is more) per minute, since every pod removed sends all its
	// clients reconnecting at once; scaleUp is Kubernetes' default (fast:
	// double, or 4 pods, every 15 seconds).
	// +optional
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
}

// RedisSpec says which Redis Cluster the gateways use.
type RedisSpec struct {
	// ClusterRef names a RedisCluster in the same namespace.
	ClusterRef LocalRef `json:"clusterRef"`
}

// LocalRef names an object in the same namespace.
type LocalRef struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// PresenceSpec tunes presence expiry (PRESENCE_TTL and HEARTBEAT_INTERVAL).
//
// +kubebuilder:validation:XValidation:rule="!has(self.ttl) || !has(self.heartbeatInterval) || duration(self.ttl).getMilliseconds() > 2 * duration(self.heartbeatInterval).getMilliseconds()",message="spec.presence.ttl must be more than twice spec.presence.heartbeatInterval"
// +kubebuilder:validation:XValidation:rule="!has(self.heartbeatInterval) || duration(self.heartbeatInterval).getMilliseconds() >= 1000",message="spec.presence.heartbeatInterval must be at least 1s"
type PresenceSpec struct {
	// TTL: a connection not refreshed for this long counts as gone (PRESENCE_TTL).
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// HeartbeatInterval: how often a gateway refreshes its connections in
	// Redis (HEARTBEAT_INTERVAL).
	// +optional
	// +kubebuilder:default="20s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	HeartbeatInterval *metav1.Duration `json:"heartbeatInterval,omitempty"`
}

// WebsocketSpec configures the gateway's client listener.
//
// +kubebuilder:validation:XValidation:rule="!has(self.port) || self.port != 9090",message="spec.websocket.port must not be 9090: the gateway serves /metrics there"
type WebsocketSpec struct {
	// Port the gateway listens on for WebSocket and HTTP (WS_PORT).
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// MaxPayloadBytes is the largest client frame (WS_MAX_PAYLOAD_BYTES), at
	// most 1 MiB, the gateway's own limit.
	// +optional
	// +kubebuilder:default=4096
	// +kubebuilder:validation:Minimum=64
	// +kubebuilder:validation:Maximum=1048576
	MaxPayloadBytes int32 `json:"maxPayloadBytes,omitempty"`

	// MaxConnectionsPerPod caps connections per gateway pod (MAX_CONNECTIONS);
	// past it upgrades get HTTP 503. 0 or unset means no limit.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxConnectionsPerPod *int32 `json:"maxConnectionsPerPod,omitempty"`

	// AllowedOrigins lists the Origin values browsers may connect from
	// (ALLOWED_ORIGINS). Empty allows any origin.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[^,\s]+$`
	// +kubebuilder:validation:XValidation:rule="self.all(o, o.matches('^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]+/?$'))",message="spec.websocket.allowedOrigins entries must be scheme://host[:port], for example https://app.example.com"
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`
}

// AuthSpec configures client authentication: with a key source set, every
// connection needs a JWT signed by it.
// +kubebuilder:validation:XValidation:rule="[has(self.jwtSecretRef), has(self.jwtPublicKeyRef), has(self.jwksURL)].filter(x, x).size() <= 1",message="spec.auth: give one JWT key source: jwtSecretRef (HS256), jwtPublicKeyRef (RS256/ES256) or jwksURL"
// +kubebuilder:validation:XValidation:rule="!has(self.requireWatchClaim) || !self.requireWatchClaim || has(self.jwtSecretRef) || has(self.jwtPublicKeyRef) || has(self.jwksURL)",message="spec.auth.requireWatchClaim needs a JWT key source (jwtSecretRef, jwtPublicKeyRef or jwksURL): without tokens there is no watch claim to require"
// +kubebuilder:validation:XValidation:rule="!(has(self.audience) || has(self.issuer)) || has(self.jwtSecretRef) || has(self.jwtPublicKeyRef) || has(self.jwksURL)",message="spec.auth.audience and spec.auth.issuer need a JWT key source (jwtSecretRef, jwtPublicKeyRef or jwksURL): without one no token is checked"
type AuthSpec struct {
	// JWTSecretRef names a Secret key holding the HS256 secret that signs
	// client tokens. That key is mounted into the pods and given as
	// AUTH_JWT_SECRET_FILE; the value never appears in the Deployment or
	// the environment, and the gateway re-reads it when the Secret changes.
	// +optional
	JWTSecretRef *SecretKeyRef `json:"jwtSecretRef,omitempty"`

	// JWTPublicKeyRef names a Secret or ConfigMap key holding the PEM public
	// key(s) (RSA, or ECDSA P-256) that verify RS256/ES256 tokens. Mounted
	// and given as AUTH_JWT_PUBLIC_KEY_FILE; several PEM blocks in one key
	// are all accepted, so a rotation can overlap the old and new keys.
	// +optional
	JWTPublicKeyRef *KeySourceRef `json:"jwtPublicKeyRef,omitempty"`

	// JWKSURL is an identity provider's JSON Web Key Set (https), which the
	// gateway fetches and refreshes: AUTH_JWT_JWKS_URL.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''",message="spec.auth.jwksURL must be an absolute http(s) URL, for example https://idp.example.com/.well-known/jwks.json"
	JWKSURL string `json:"jwksURL,omitempty"`

	// Audience, when set, must be one of a token's aud values:
	// AUTH_JWT_AUDIENCE.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Audience string `json:"audience,omitempty"`

	// Issuer, when set, must equal a token's iss: AUTH_JWT_ISSUER.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Issuer string `json:"issuer,omitempty"`

	// RequireWatchClaim refuses tokens without a "watch" claim (the user
	// ids, or prefixes ending in "*", a connection may subscribe to and
	// query): AUTH_REQUIRE_WATCH_CLAIM on the gateway. Without it a token
	// lacking the claim may watch anybody.
	// +optional
	RequireWatchClaim bool `json:"requireWatchClaim,omitempty"`
}

// KeySourceRef names one key of a Secret or of a ConfigMap in the same
// namespace: exactly one of the two.
// +kubebuilder:validation:XValidation:rule="has(self.secretKeyRef) != has(self.configMapKeyRef)",message="give exactly one of secretKeyRef and configMapKeyRef"
type KeySourceRef struct {
	// SecretKeyRef names a key of a Secret.
	// +optional
	SecretKeyRef *ObjectKeyRef `json:"secretKeyRef,omitempty"`

	// ConfigMapKeyRef names a key of a ConfigMap.
	// +optional
	ConfigMapKeyRef *ObjectKeyRef `json:"configMapKeyRef,omitempty"`
}

// ObjectKeyRef names one key of an object (a Secret or a ConfigMap) in the
// same namespace.
type ObjectKeyRef struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key in the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// SecretKeyRef names one key of a Secret in the same namespace.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key in the Secret.
	// +optional
	// +kubebuilder:default="secret"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// ServiceSpec configures the gateway Service.
// +kubebuilder:validation:XValidation:rule="!has(self.loadBalancerClass) || self.type == 'LoadBalancer'",message="spec.service.loadBalancerClass needs spec.service.type LoadBalancer"
// +kubebuilder:validation:XValidation:rule="!has(self.loadBalancerSourceRanges) || self.type == 'LoadBalancer'",message="spec.service.loadBalancerSourceRanges needs spec.service.type LoadBalancer"
// +kubebuilder:validation:XValidation:rule="!has(self.externalTrafficPolicy) || self.type in ['NodePort', 'LoadBalancer']",message="spec.service.externalTrafficPolicy needs spec.service.type NodePort or LoadBalancer"
type ServiceSpec struct {
	// Type of the Service.
	// +optional
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	Type corev1.ServiceType `json:"type,omitempty"`

	// Port of the Service (forwarded to the gateway's WebSocket port).
	// +optional
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// Annotations of the Service (for example a cloud load balancer's).
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// Labels added to the Service's; the operator's own labels win.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// LoadBalancerClass picks the load balancer implementation (type
	// LoadBalancer only). Immutable once set, as on any Service.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	LoadBalancerClass *string `json:"loadBalancerClass,omitempty"`

	// LoadBalancerSourceRanges restricts the client addresses a load
	// balancer accepts (CIDRs; type LoadBalancer only).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(r, isCIDR(r))",message="spec.service.loadBalancerSourceRanges entries must be CIDRs, for example 203.0.113.0/24"
	LoadBalancerSourceRanges []string `json:"loadBalancerSourceRanges,omitempty"`

	// ExternalTrafficPolicy of a NodePort or LoadBalancer Service: Local
	// keeps the clients' source addresses (and skips a second hop), Cluster
	// spreads over every node.
	// +optional
	// +kubebuilder:validation:Enum=Cluster;Local
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
}

// IngressSpec describes the Ingress in front of the client Service. The
// gateways' WebSocket connections go through it like any HTTP request that
// upgrades; the gateway's ping interval (HEARTBEAT_INTERVAL, 20 s) keeps
// them under the usual 60 s proxy read timeouts.
type IngressSpec struct {
	// ClassName is the IngressClass; the cluster's default class when
	// empty.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ClassName *string `json:"className,omitempty"`

	// Host is the DNS name clients connect to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Host string `json:"host"`

	// Path is the path prefix routed to the gateways.
	// +optional
	// +kubebuilder:default="/"
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`

	// TLSSecretName names a kubernetes.io/tls Secret in the same namespace
	// holding the certificate of host; clients then connect with wss://.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// Annotations of the Ingress (the controller's own settings, cert-manager's).
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PodDisruptionBudgetSpec configures the gateway PodDisruptionBudget.
type PodDisruptionBudgetSpec struct {
	// MaxUnavailable gateway pods during voluntary disruptions (a number or a
	// percentage).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')",message="spec.podDisruptionBudget.maxUnavailable must be a non-negative number or a percentage such as 25%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}

// PresenceGatewayStatus is what the operator observed and did.
type PresenceGatewayStatus struct {
	// ObservedGeneration is the spec generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Replicas is the number of gateway pods (the scale subresource's status).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// ReadyReplicas is the number of gateway pods that pass their readiness probe.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// Selector is the label selector of the gateway pods, in string form
	// (used by the scale subresource and the HPA).
	// +optional
	Selector string `json:"selector,omitempty"`

	// RedisNodes are the seed nodes the gateways read, from their ConfigMap
	// <name>-redis-nodes (REDIS_NODES_FILE).
	// +optional
	// +listType=atomic
	RedisNodes []string `json:"redisNodes,omitempty"`

	// Endpoint is the in-cluster WebSocket URL of the gateway Service.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// Endpoints are the URLs clients connect to: the in-cluster one, and
	// when exposed the Ingress's and the load balancer's (once it has an
	// address).
	// +optional
	// +listType=atomic
	Endpoints []GatewayEndpoint `json:"endpoints,omitempty"`

	// Conditions: Ready, Available, Progressing, RedisReady, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PodTemplate is the part of the gateway pods' template a PresenceGateway
// may add to or override.
type PodTemplate struct {
	// Metadata adds labels and annotations to the pods (as podLabels and
	// podAnnotations do; those win on the same key, the selector labels win
	// over both).
	// +optional
	Metadata PodTemplateMetadata `json:"metadata,omitempty"`

	// Spec adds to the pod spec.
	// +optional
	Spec PodTemplateSpec `json:"spec,omitempty"`
}

// PodTemplateMetadata are labels and annotations of the gateway pods.
type PodTemplateMetadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PodTemplateSpec is what a PresenceGateway may add to the gateway pods.
type PodTemplateSpec struct {
	// ServiceAccountName runs the pods under this ServiceAccount (the
	// namespace's default one otherwise).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// AutomountServiceAccountToken mounts the ServiceAccount's token (the
	// gateway needs none, so the operator sets false; a sidecar may).
	// +optional
	AutomountServiceAccountToken *bool `json:"automountServiceAccountToken,omitempty"`

	// SecurityContext of the pods: each field set here replaces the
	// operator's (runAsNonRoot, fsGroup 65532, RuntimeDefault seccomp).
	// +optional
	SecurityContext *corev1.PodSecurityContext `json:"securityContext,omitempty"`

	// InitContainers run before the gateway container.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	InitContainers []corev1.Container `json:"initContainers,omitempty"`

	// Containers run beside the gateway container (sidecars); none may be
	// named gateway.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(c, c.name != 'gateway')",message="spec.template.spec.containers: the name gateway is the operator's container; name sidecars otherwise"
	Containers []corev1.Container `json:"containers,omitempty"`

	// Volumes added to the pods; their names must differ from the
	// operator's volumes (tmp, redis-nodes, redis-auth, jwt, ...).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Volumes []corev1.Volume `json:"volumes,omitempty"`

	// GatewayVolumeMounts mount volumes into the gateway container, at paths
	// other than the operator's mounts.
	// +optional
	// +listType=map
	// +listMapKey=mountPath
	// +kubebuilder:validation:MaxItems=32
	GatewayVolumeMounts []corev1.VolumeMount `json:"gatewayVolumeMounts,omitempty"`

	// TerminationGracePeriodSeconds of the pods: at least 35, the gateway's
	// drain (SHUTDOWN_GRACE, 25 s) and the operator's margin (10 s).
	// +optional
	// +kubebuilder:validation:Minimum=35
	// +kubebuilder:validation:Maximum=3600
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
}

// KEDASpec configures the KEDA ScaledObject.
type KEDASpec struct {
	// PollingInterval is how often KEDA reads the gateways' metrics, in
	// seconds; KEDA's default (30) when unset.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	PollingInterval *int32 `json:"pollingInterval,omitempty"`
}

// MonitoringSpec says how the gateways are scraped.
type MonitoringSpec struct {
	// PodMonitor, when set, has the operator create a prometheus-operator
	// PodMonitor (named after the PresenceGateway) that scrapes every
	// gateway pod's metrics port. Needs prometheus-operator's CRDs
	// (monitoring.coreos.com/v1) when the operator starts.
	// +optional
	PodMonitor *PodMonitorSpec `json:"podMonitor,omitempty"`
}

// PodMonitorSpec configures the PodMonitor.
type PodMonitorSpec struct {
	// Interval between scrapes; Prometheus' own when empty.
	// +optional
	// +kubebuilder:validation:Pattern=`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`
	Interval string `json:"interval,omitempty"`

	// Labels of the PodMonitor, for a Prometheus whose podMonitorSelector
	// selects by label (the kube-prometheus-stack chart's selects
	// release: <its release name>).
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// HTTPRouteSpec describes the HTTPRoute in front of the client Service.
type HTTPRouteSpec struct {
	// ParentRefs are the Gateways (or their listeners) the route attaches to.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	ParentRefs []RouteParentRef `json:"parentRefs"`

	// Hostnames the route answers for; when empty, those of the listeners
	// it attaches to.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Hostnames []string `json:"hostnames,omitempty"`

	// Path is the path prefix routed to the gateways.
	// +optional
	// +kubebuilder:default="/"
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`
}

// RouteParentRef names a Gateway, and optionally one of its listeners.
type RouteParentRef struct {
	// Name of the Gateway.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Namespace of the Gateway; the PresenceGateway's when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// SectionName is the Gateway listener to attach to; all when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SectionName string `json:"sectionName,omitempty"`
}

// GatewayEndpoint is one URL the gateways answer on.
type GatewayEndpoint struct {
	// Scope is InCluster or External.
	// +kubebuilder:validation:Enum=InCluster;External
	Scope string `json:"scope"`
	// Via is what serves the URL: Service, Ingress, LoadBalancer or HTTPRoute.
	// +kubebuilder:validation:Enum=Service;Ingress;LoadBalancer;HTTPRoute
	Via string `json:"via"`
	// URL is where clients connect (ws:// or wss://).
	URL string `json:"url"`
}

// Scopes and kinds of GatewayEndpoint.
const (
	EndpointScopeInCluster  = "InCluster"
	EndpointScopeExternal   = "External"
	EndpointViaService      = "Service"
	EndpointViaIngress      = "Ingress"
	EndpointViaLoadBalancer = "LoadBalancer"
	EndpointViaHTTPRoute    = "HTTPRoute"
)

// PresenceGateway runs a fleet of presence gateway pods in front of a Redis
// Cluster: a Deployment, a Service, an optional HorizontalPodAutoscaler and a
// PodDisruptionBudget, all named after it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=pgw,categories=presencekit
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="Redis",type=string,JSONPath=`.spec.redis.clusterRef.name`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="External",type=string,JSONPath=`.status.endpoints[?(@.scope=="External")].url`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Available",type=integer,priority=1,JSONPath=`.status.readyReplicas`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 55 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be at most 55 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-': it names the gateway's Service and its <name>-metrics Service (a DNS-1035 label of at most 63)"
type PresenceGateway struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PresenceGatewaySpec   `json:"spec"`
	Status PresenceGatewayStatus `json:"status,omitempty"`
}

// PresenceGatewayList is a list of PresenceGateway.
//
// +kubebuilder:object:root=true
type PresenceGatewayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PresenceGateway `json:"items"`
}
