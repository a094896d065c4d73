package v1alpha1

// Condition types. Every condition carries the observedGeneration of the spec
// it was computed from, so `kubectl wait --for=condition=Ready` never acts on
// a stale one.
const (
	// ConditionReady summarises the resource: for a PresenceGateway, Redis is
	// ready and the rolled-out Deployment is available; for a RedisCluster, the
	// cluster answers, its state is ok and all 16384 slots are covered.
	ConditionReady = "Ready"
	// ConditionAvailable says the gateway Deployment has its minimum of ready pods.
	ConditionAvailable = "Available"
	// ConditionProgressing is True while a rollout of the gateway pods is under way.
	ConditionProgressing = "Progressing"
	// ConditionRedisReady mirrors the referenced RedisCluster (and its Secret).
	ConditionRedisReady = "RedisReady"
	// ConditionDegraded is True when something needs a human: a missing
	// reference, an invalid spec, a stuck rollout, an unhealthy Redis.
	ConditionDegraded = "Degraded"
	// ConditionPaused is True while the resource carries the annotation
	// presence.presencekit.io/reconcile: "false" and the operator leaves it
	// (and, for a PresenceGateway, its objects) alone. It is removed when
	// reconciling resumes.
	ConditionPaused = "Paused"
	// ConditionAutoscaling, on a PresenceGateway with spec.autoscaling,
	// mirrors its HorizontalPodAutoscaler: True while it computes replica
	// counts from its metrics, False (and Degraded) when it cannot scale or
	// cannot read a metric, with the HPA's own reason and message.
	ConditionAutoscaling = "Autoscaling"
)

// AnnotationReconcile, set to "false" on a PresenceGateway or RedisCluster,
// stops the operator from reconciling that one resource: it changes none of
// its objects, runs no health check and writes no status but the Paused
// condition. Removing the annotation (or any other value) resumes.
const AnnotationReconcile = "presence.presencekit.io/reconcile"

// Condition reasons (CamelCase, as metav1.Condition requires).
const (
	// ReasonReady: everything the condition summarises is fine.
	ReasonReady = "Ready"
	// ReasonAsExpected: Degraded=False.
	ReasonAsExpected = "AsExpected"

	// ReasonRedisClusterNotFound: spec.redis.clusterRef names no RedisCluster in the namespace.
	ReasonRedisClusterNotFound = "RedisClusterNotFound"
	// ReasonRedisClusterNotReady: the referenced RedisCluster is not Ready (yet).
	ReasonRedisClusterNotReady = "RedisClusterNotReady"
	// ReasonRedisClusterReady: the referenced RedisCluster is Ready.
	ReasonRedisClusterReady = "RedisClusterReady"
	// ReasonSecretNotFound: a referenced Secret (Redis auth or JWT) does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonJWTSecretNotFound: the Secret spec.auth.jwtSecretRef names does
	// not exist; Redis may well be fine (RedisReady says).
	ReasonJWTSecretNotFound = "JWTSecretNotFound"
	// ReasonJWTKeyNotFound: the Secret or ConfigMap of
	// spec.auth.jwtPublicKeyRef does not exist, or lacks the key named.
	ReasonJWTKeyNotFound = "JWTKeyNotFound"
	// ReasonGatewayAPIMissing: spec.httpRoute is set but the cluster did
	// not serve the Gateway API's HTTPRoute when the operator started.
	ReasonGatewayAPIMissing = "GatewayAPIMissing"
	// ReasonPrometheusOperatorMissing: spec.monitoring.podMonitor is set but
	// the cluster did not serve prometheus-operator's PodMonitor when the
	// operator started.
	ReasonPrometheusOperatorMissing = "PrometheusOperatorMissing"
	// ReasonKEDAMissing: Autoscaling=False, spec.autoscaling.keda is set but
	// the cluster did not serve KEDA's ScaledObject when the operator
	// started.
	ReasonKEDAMissing = "KEDAMissing"
	// ReasonScaledObjectNotReady: Autoscaling=False, KEDA reports the
	// ScaledObject not Ready (its message says why: a trigger that cannot
	// read its metric, a bad target).
	ReasonScaledObjectNotReady = "ScaledObjectNotReady"
	// ReasonScaledObjectReady: Autoscaling=True, KEDA scales the gateways.
	ReasonScaledObjectReady = "ScaledObjectReady"
	// ReasonInvalidSecret: a referenced Secret lacks a key the operator needs.
	ReasonInvalidSecret = "InvalidSecret"
	// ReasonInvalidSpec: the spec passed schema validation but cannot be
	// rendered (for example no image and no --gateway-image default).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonReconcileError: an API call failed; the message says which.
	ReasonReconcileError = "ReconcileError"

	// ReasonRolloutInProgress: the Deployment is rolling out new pods.
	ReasonRolloutInProgress = "RolloutInProgress"
	// ReasonRolloutComplete: every pod runs the current template.
	ReasonRolloutComplete = "RolloutComplete"
	// ReasonRolloutQueued: a new pod template caused by something the
	// PresenceGateway shares with others (the operator's default image or
	// version, the RedisCluster's spec.auth) waits for one of the
	// --max-concurrent-rollouts slots; the pods keep their current template.
	ReasonRolloutQueued = "RolloutQueued"
	// ReasonProgressDeadlineExceeded: the Deployment stopped making progress.
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonMinimumReplicasAvailable: Available=True.
	ReasonMinimumReplicasAvailable = "MinimumReplicasAvailable"
	// ReasonMinimumReplicasUnavailable: fewer ready pods than the Deployment's minimum.
	ReasonMinimumReplicasUnavailable = "MinimumReplicasUnavailable"
	// ReasonWaitingForRedis: owned objects are not created until the RedisCluster exists.
	ReasonWaitingForRedis = "WaitingForRedis"

	// ReasonClusterOK: RedisCluster Ready=True.
	ReasonClusterOK = "ClusterOK"
	// ReasonUnreachable: no seed node of the RedisCluster answered.
	ReasonUnreachable = "Unreachable"
	// ReasonClusterDown: a node answered but reports cluster_state:fail.
	ReasonClusterDown = "ClusterDown"
	// ReasonSlotsUncovered: fewer than 16384 hash slots are served.
	ReasonSlotsUncovered = "SlotsUncovered"
	// ReasonSeedsUnreachable: the cluster is ok but some seed nodes did not answer (Degraded=True).
	ReasonSeedsUnreachable = "SeedsUnreachable"
	// ReasonInsufficientPermissions: Redis accepted the credentials but the
	// ACL user may not run a command the check or the gateways need, or not
	// on the gateways' keys and channels (NOPERM); the message names them.
	ReasonInsufficientPermissions = "InsufficientPermissions"
	// ReasonConfigMapNotFound: a referenced ConfigMap (the Redis CA of
	// spec.tls.caRef) does not exist.
	ReasonConfigMapNotFound = "ConfigMapNotFound"
	// ReasonInvalidCA: spec.tls.caRef names a key that is missing or holds
	// no PEM certificate.
	ReasonInvalidCA = "InvalidCA"
	// ReasonTLSHandshakeFailed: no seed node completed a TLS handshake: its
	// certificate did not verify against spec.tls (CA, serverName), or it
	// does not speak TLS at all (or speaks it while spec.tls is off).
	ReasonTLSHandshakeFailed = "TLSHandshakeFailed"
	// ReasonRedisVersionUnsupported: the cluster answers but is older than
	// Redis 7 (no CLUSTER SHARDS, no sharded pub/sub the gateways need).
	ReasonRedisVersionUnsupported = "RedisVersionUnsupported"
	// ReasonReconcilePaused: Paused=True, the annotation
	// presence.presencekit.io/reconcile is "false".
	ReasonReconcilePaused = "ReconcilePaused"
	// ReasonScalingActive: Autoscaling=True, the HPA computes replica counts.
	ReasonScalingActive = "ScalingActive"
	// ReasonScalingLimited: Autoscaling=True, but the HPA wants more (or
	// fewer) pods than spec.autoscaling allows; the message says which.
	ReasonScalingLimited = "ScalingLimited"
	// ReasonAutoscalerPending: Autoscaling=Unknown, the HPA has not been
	// evaluated yet.
	ReasonAutoscalerPending = "AutoscalerPending"
	// ReasonAutoscalerMetricsUnavailable: Autoscaling=False, the HPA cannot
	// read a metric (for targetConnectionsPerPod: nothing serves
	// presence_gateway_connections on the custom metrics API).
	ReasonAutoscalerMetricsUnavailable = "AutoscalerMetricsUnavailable"
	// ReasonAutoscalerUnableToScale: Autoscaling=False, the HPA cannot read
	// or change the Deployment's scale, or is not active for another reason.
	ReasonAutoscalerUnableToScale = "AutoscalerUnableToScale"

	// ReasonNoNodes: the RedisCluster's source gives no node to check (a
	// Service without ready endpoints).
	ReasonNoNodes = "NoNodes"
	// ReasonSourceNotFound: the source of the cluster's nodes does not exist
	// (spec.serviceRef names no Service, or no port of it).
	ReasonSourceNotFound = "SourceNotFound"
)
