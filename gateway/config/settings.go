package config

import "time"

// The names, defaults and limits of the settings the operator sets on
// gateway pods. They are the one definition both sides use: the operator
// builds the pods' environment from these names, its CRD's defaults and
// bounds are checked against these values by a test, and this package's
// tests check that each name is a variable Load reads with this default.
const (
	EnvWSPort            = "WS_PORT"
	EnvMetricsPort       = "METRICS_PORT"
	EnvRedisNodesFile    = "REDIS_NODES_FILE"
	EnvRedisUsername     = "REDIS_USERNAME"
	EnvRedisUsernameFile = "REDIS_USERNAME_FILE"
	EnvRedisPasswordFile = "REDIS_PASSWORD_FILE"
	EnvRedisTLS          = "REDIS_TLS"
	EnvRedisTLSCAFile    = "REDIS_TLS_CA_FILE"
	// EnvRedisTLSServerName is the name every node's certificate is
	// verified against, instead of the host dialled.
	EnvRedisTLSServerName = "REDIS_TLS_SERVER_NAME"
	// EnvRedisTLSInsecureSkipVerify accepts any certificate (tests only).
	EnvRedisTLSInsecureSkipVerify = "REDIS_TLS_INSECURE_SKIP_VERIFY"
	EnvMaxPayloadBytes            = "WS_MAX_PAYLOAD_BYTES"
	EnvPresenceTTL                = "PRESENCE_TTL"
	EnvHeartbeatInterval          = "HEARTBEAT_INTERVAL"
	EnvMaxConnections             = "MAX_CONNECTIONS"
	EnvShutdownGrace              = "SHUTDOWN_GRACE"
	EnvAllowedOrigins             = "ALLOWED_ORIGINS"
	EnvAuthJWTSecretFile          = "AUTH_JWT_SECRET_FILE"
	// EnvAuthJWTPublicKeyFile, EnvAuthJWTJWKSURL: the other two key sources.
	EnvAuthJWTPublicKeyFile = "AUTH_JWT_PUBLIC_KEY_FILE"
	EnvAuthJWTJWKSURL       = "AUTH_JWT_JWKS_URL"
	EnvAuthJWTAudience      = "AUTH_JWT_AUDIENCE"
	EnvAuthJWTIssuer        = "AUTH_JWT_ISSUER"
	// EnvAuthRequireWatchClaim refuses tokens without a "watch" claim.
	EnvAuthRequireWatchClaim = "AUTH_REQUIRE_WATCH_CLAIM"
)

// Defaults and limits of those settings.
const (
	DefaultWSPort      = 8080
	DefaultMetricsPort = 9090

	DefaultMaxPayloadBytes = 4096
	MinMaxPayloadBytes     = 64
	// MaxMaxPayloadBytes is the largest WS_MAX_PAYLOAD_BYTES accepted: 1 MiB.
	MaxMaxPayloadBytes = 1 << 20

	DefaultPresenceTTL       = 60 * time.Second
	DefaultHeartbeatInterval = 20 * time.Second
	DefaultShutdownGrace     = 25 * time.Second
)

// OperatorSettings lists every variable the operator may set, so that a test
// on each side can check the other: the gateway reads each of them, and the
// operator sets no other.
//
// What may change while pods run (the Redis seed nodes, the Redis
// credentials, the Redis CA bundle, the JWT secret or public key) is given
// as files the gateway re-reads, so that a change needs no restart.
var OperatorSettings = []string{
	EnvWSPort, EnvMetricsPort, EnvRedisNodesFile, EnvRedisUsername, EnvRedisUsernameFile, EnvRedisPasswordFile,
	EnvRedisTLS, EnvRedisTLSCAFile, EnvRedisTLSServerName, EnvRedisTLSInsecureSkipVerify,
	EnvMaxPayloadBytes, EnvPresenceTTL, EnvHeartbeatInterval, EnvMaxConnections,
	EnvShutdownGrace, EnvAllowedOrigins, EnvAuthJWTSecretFile, EnvAuthJWTPublicKeyFile,
	EnvAuthJWTJWKSURL, EnvAuthJWTAudience, EnvAuthJWTIssuer, EnvAuthRequireWatchClaim,
}
