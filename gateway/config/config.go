// Package config reads the gateway's settings from the environment and
// from flags (a flag wins over its variable), and rejects every bad value
// with one line naming the variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Limits of WS_MAX_PAYLOAD_BYTES: the largest client frame the gateway
// can be told to accept. The operator's CRD uses the same bounds.
const (
	MinPayloadBytes = 64
	MaxPayloadLimit = 1 << 20 // 1 MiB
)

// MaxJWTLeeway bounds AUTH_JWT_LEEWAY: a larger clock skew would keep
// expired tokens working for long.
const MaxJWTLeeway = 5 * time.Minute

// Config is the gateway's configuration (see the README's configuration
// table).
type Config struct {
	WSPort      int
	MetricsPort int

	RedisNodes     []string // host:port seed nodes (REDIS_NODES, or REDIS_NODES_FILE's content at start); empty = embedded in-memory store
	RedisNodesFile string   // re-read when it changes (then RedisNodes is only its first content)
	RedisUsername  string
	// RedisUsernameFile is re-read when it changes; absent = no username.
	RedisUsernameFile string
	RedisPassword     string // from REDIS_PASSWORD
	RedisPasswordFile string // re-read when it changes
	RedisTLS          bool
	RedisTLSCAFile    string // re-read when it changes
	// RedisTLSServerName, when set, is the name every node's certificate
	// is verified against instead of the host dialled.
	RedisTLSServerName string
	// RedisTLSInsecureSkipVerify accepts any certificate: for tests only.
	RedisTLSInsecureSkipVerify bool

	MaxPayloadBytes   int64
	PresenceTTL       time.Duration
	HeartbeatInterval time.Duration
	IdleTimeout       time.Duration
	MaxConnections    int // 0 = no limit
	ShutdownGrace     time.Duration
	OfflineGrace      time.Duration

	AllowedOrigins []string // empty = any

	// JWT key source: at most one of these four is set (none: no auth).
	AuthJWTSecret        string // HS256 secret given in the environment
	AuthJWTSecretFile    string // HS256 secret read from a file, re-read when it changes
	AuthJWTPublicKeyFile string // PEM public key(s), RS256/ES256, re-read when it changes
	AuthJWTJWKSURL       string // an identity provider's JSON Web Key Set
	// Claim checks.
	AuthJWTAudience   string // when set, must be one of the token's aud
	AuthJWTIssuer     string // when set, must be the token's iss
	AuthJWTRequireExp bool
	AuthJWTLeeway     time.Duration // clock skew on exp/nbf/iat; connections close at exp + leeway
	// AuthRequireWatchClaim refuses tokens without a "watch" claim (the
	// users a connection may watch); by default such a token watches anybody.
	AuthRequireWatchClaim bool

	PprofEnabled bool // /debug/pprof on the metrics port

	MessageRate  float64 // messages per second
	MessageBurst int

	LogLevel  slog.Level
	LogFormat string // json or text
}

// setting is one variable: its environment name, flag, default and parser.
type setting struct {
	env, flag, def, help string
	parse                func(c *Config, v string) error
}

var settings = []setting{
	{"WS_PORT", "ws-port", "8080", "WebSocket and presence HTTP API port", func(c *Config, v string) (err error) {
		c.WSPort, err = parsePort(v)
		return
	}},
	{"METRICS_PORT", "metrics-port", "9090", "port of /metrics (Prometheus)", func(c *Config, v string) (err error) {
		c.MetricsPort, err = parsePort(v)
		return
	}},
	{"REDIS_NODES", "redis-nodes", "", "comma list of host:port Redis Cluster seed nodes; empty = embedded in-memory store", func(c *Config, v string) (err error) {
		c.RedisNodes, err = ParseNodes(v)
		return
	}},
	{"REDIS_NODES_FILE", "redis-nodes-file", "", "file holding the seed nodes like REDIS_NODES (a mounted ConfigMap), re-read when it changes", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		if len(c.RedisNodes) > 0 {
			return errors.New("REDIS_NODES is set too; use one of them")
		}
		b, err := os.ReadFile(v)
		if err != nil {
			return err
		}
		if c.RedisNodes, err = ParseNodes(string(b)); err != nil {
			return err
		}
		if len(c.RedisNodes) == 0 {
			return errors.New("the file lists no node")
		}
		c.RedisNodesFile = v
		return nil
	}},
	{EnvRedisUsername, "redis-username", "", "Redis ACL user (Redis 6+; empty: the default user)", func(c *Config, v string) error {
		c.RedisUsername = v
		return nil
	}},
	{"REDIS_USERNAME_FILE", "redis-username-file", "", "file holding the Redis ACL user (a mounted Secret), re-read when it changes; an absent file means the default user", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		if c.RedisUsername != "" {
			return errors.New("REDIS_USERNAME is set too; use one of them")
		}
		if _, err := os.Stat(v); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		c.RedisUsernameFile = v
		return nil
	}},
	{"REDIS_PASSWORD", "redis-password", "", "Redis ACL password (prefer REDIS_PASSWORD_FILE)", func(c *Config, v string) error {
		c.RedisPassword = v
		return nil
	}},
	{"REDIS_PASSWORD_FILE", "redis-password-file", "", "file holding the Redis password (a mounted Secret), re-read when it changes", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		if c.RedisPassword != "" {
			return errors.New("REDIS_PASSWORD is set too; use one of them")
		}
		if _, err := os.ReadFile(v); err != nil {
			return err
		}
		c.RedisPasswordFile = v
		return nil
	}},
	{EnvRedisTLS, "redis-tls", "false", "TLS to Redis (every node, the tls-port)", func(c *Config, v string) (err error) {
		c.RedisTLS, err = parseBool(v)
		return
	}},
	{EnvRedisTLSCAFile, "redis-tls-ca-file", "", "PEM CA bundle to verify Redis with (a mounted Secret or ConfigMap), re-read when it changes (default: system roots)", func(c *Config, v string) error {
		if v != "" {
			if _, err := os.Stat(v); err != nil {
				return err
			}
		}
		c.RedisTLSCAFile = v
		return nil
	}},
	{EnvRedisTLSServerName, "redis-tls-server-name", "", "name every Redis node's certificate is verified against (default: the host dialled, often an IP the node announces)", func(c *Config, v string) error {
		if strings.ContainsAny(v, ":/ ") {
			return errors.New("a host name, without port or scheme")
		}
		c.RedisTLSServerName = v
		return nil
	}},
	{EnvRedisTLSInsecureSkipVerify, "redis-tls-insecure-skip-verify", "false", "accept any certificate from Redis (encrypted, not authenticated): for tests only", func(c *Config, v string) (err error) {
		c.RedisTLSInsecureSkipVerify, err = parseBool(v)
		return
	}},
	{"WS_MAX_PAYLOAD_BYTES", "ws-max-payload-bytes", "4096", "largest client frame; bigger ones close with 1009", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < MinPayloadBytes || n > MaxPayloadLimit {
			return fmt.Errorf("not an integer between %d and %d", MinPayloadBytes, MaxPayloadLimit)
		}
		c.MaxPayloadBytes = n
		return nil
	}},
	{"PRESENCE_TTL", "presence-ttl", "60s", "a connection not refreshed for this long counts as gone", durationInto(func(c *Config) *time.Duration { return &c.PresenceTTL }, false)},
	{"HEARTBEAT_INTERVAL", "heartbeat-interval", "20s", "how often the gateway refreshes its connections", durationInto(func(c *Config) *time.Duration { return &c.HeartbeatInterval }, false)},
	{"IDLE_TIMEOUT", "idle-timeout", "", "a client silent for this long is closed with 1001; at least twice HEARTBEAT_INTERVAL (default: 3 x HEARTBEAT_INTERVAL, 60s)", func(c *Config, v string) error {
		if v == "" {
			return nil // derived from the heartbeat in Load
		}
		return durationInto(func(c *Config) *time.Duration { return &c.IdleTimeout }, false)(c, v)
	}},
	{"MAX_CONNECTIONS", "max-connections", "0", "per-process connection limit (0 = none); past it upgrades get 503", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errors.New("not a non-negative integer")
		}
		c.MaxConnections = n
		return nil
	}},
	{"SHUTDOWN_GRACE", "shutdown-grace", "25s", "drain time on SIGTERM", durationInto(func(c *Config) *time.Duration { return &c.ShutdownGrace }, true)},
	{"ALLOWED_ORIGINS", "allowed-origins", "", "comma list of allowed Origin values (empty = any)", func(c *Config, v string) error {
		c.AllowedOrigins = nil
		for _, o := range strings.Split(v, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			if !strings.Contains(o, "://") {
				return fmt.Errorf("entry %q: an origin is scheme://host[:port], e.g. https://app.example.com", o)
			}
			c.AllowedOrigins = append(c.AllowedOrigins, strings.TrimRight(o, "/"))
		}
		return nil
	}},
	{"AUTH_JWT_SECRET", "auth-jwt-secret", "", "HS256 secret; when set a JWT is required (prefer AUTH_JWT_SECRET_FILE)", func(c *Config, v string) error {
		c.AuthJWTSecret = v
		return nil
	}},
	{"AUTH_JWT_SECRET_FILE", "auth-jwt-secret-file", "", "file holding the HS256 secret (a mounted Secret), re-read when it changes; when set a JWT is required", func(c *Config, v string) (err error) {
		c.AuthJWTSecretFile, err = existingFile(v)
		return
	}},
	{"AUTH_JWT_PUBLIC_KEY_FILE", "auth-jwt-public-key-file", "", "PEM public key(s) (RSA or ECDSA P-256) for RS256/ES256, re-read when it changes; when set a JWT is required", func(c *Config, v string) (err error) {
		c.AuthJWTPublicKeyFile, err = existingFile(v)
		return
	}},
	{"AUTH_JWT_JWKS_URL", "auth-jwt-jwks-url", "", "an identity provider's JSON Web Key Set URL, fetched and refreshed; when set a JWT is required", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return errors.New("not an http(s):// URL")
		}
		c.AuthJWTJWKSURL = v
		return nil
	}},
	{"AUTH_JWT_AUDIENCE", "auth-jwt-audience", "", "when set, a token's aud must include it", func(c *Config, v string) error {
		c.AuthJWTAudience = v
		return nil
	}},
	{"AUTH_JWT_ISSUER", "auth-jwt-issuer", "", "when set, a token's iss must equal it", func(c *Config, v string) error {
		c.AuthJWTIssuer = v
		return nil
	}},
	{"AUTH_JWT_REQUIRE_EXP", "auth-jwt-require-exp", "true", "refuse tokens without exp (false: such tokens never expire)", func(c *Config, v string) (err error) {
		c.AuthJWTRequireExp, err = parseBool(v)
		return
	}},
	{"AUTH_JWT_LEEWAY", "auth-jwt-leeway", "5s", "clock skew allowed on exp, nbf and iat; an open connection is closed with 4001 at exp plus this", func(c *Config, v string) error {
		if err := durationInto(func(c *Config) *time.Duration { return &c.AuthJWTLeeway }, true)(c, v); err != nil {
			return err
		}
		if c.AuthJWTLeeway > MaxJWTLeeway {
			return fmt.Errorf("at most %s", MaxJWTLeeway)
		}
		return nil
	}},
	{EnvAuthRequireWatchClaim, "auth-require-watch-claim", "false", `refuse tokens without a "watch" claim (the user ids, or prefixes ending in *, a connection may subscribe to and query)`, func(c *Config, v string) (err error) {
		c.AuthRequireWatchClaim, err = parseBool(v)
		return
	}},
	{"MESSAGE_RATE", "message-rate", "20", "per-connection messages per second (token bucket)", func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1e6 {
			return errors.New("not a positive number")
		}
		c.MessageRate = f
		return nil
	}},
	{"MESSAGE_BURST", "message-burst", "40", "per-connection burst of messages (token bucket size)", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errors.New("not a positive integer")
		}
		c.MessageBurst = n
		return nil
	}},
	{"OFFLINE_GRACE", "offline-grace", "0s", "delay before an offline event, so a quick reconnect does not flap", durationInto(func(c *Config) *time.Duration { return &c.OfflineGrace }, true)},
	{"PPROF_ENABLED", "pprof-enabled", "false", "serve /debug/pprof (heap, goroutine, CPU profiles) on the metrics port", func(c *Config, v string) (err error) {
		c.PprofEnabled, err = parseBool(v)
		return
	}},
	{"LOG_LEVEL", "log-level", "info", "debug, info, warn or error", func(c *Config, v string) error {
		return c.LogLevel.UnmarshalText([]byte(v))
	}},
	{"LOG_FORMAT", "log-format", "json", "json or text", func(c *Config, v string) error {
		if v != "json" && v != "text" {
			return errors.New("must be json or text")
		}
		c.LogFormat = v
		return nil
	}},
}

// ErrHelp is returned when the flags ask for help; the usage was written.
var ErrHelp = flag.ErrHelp

// ErrVersion is returned when the flags ask for the version (--version):
// the caller prints it and exits without starting anything.
var ErrVersion = errors.New("version requested")

// Load reads the configuration: each setting comes from its flag in args
// if given, else from its environment variable (getenv) if not empty, else
// its default. The error names the variable and the bad value. With -h the
// usage goes to usage and the error is ErrHelp; with --version the error is
// ErrVersion, whatever the other settings say.
func Load(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	fs := flag.NewFlagSet("presence-gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		values[s.flag] = fs.String(s.flag, "", fmt.Sprintf("%s (env %s, default %q)", s.help, s.env, s.def))
	}
	showVersion := fs.Bool("version", false, "print the version, commit and Go version, and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usage)
			fs.PrintDefaults()
		}
		return Config{}, err
	}
	if *showVersion {
		return Config{}, ErrVersion
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (settings are flags like --ws-port=8080 or environment variables)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var c Config
	for _, s := range settings {
		v, from := s.def, s.env
		if given[s.flag] {
			v, from = *values[s.flag], "--"+s.flag
		} else if e := getenv(s.env); e != "" {
			v = e
		}
		v = strings.TrimSpace(v)
		if err := s.parse(&c, v); err != nil {
			return Config{}, fmt.Errorf("%s=%q: %w", from, v, err)
		}
	}
	if err := c.check(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// check refuses settings that are each valid but contradict each other,
// with one line naming them.
func (c *Config) check() error {
	if c.PresenceTTL <= 2*c.HeartbeatInterval {
		return fmt.Errorf("PRESENCE_TTL=%s must be above twice HEARTBEAT_INTERVAL=%s, so that one missed refresh does not expire a live connection",
			c.PresenceTTL, c.HeartbeatInterval)
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 3 * c.HeartbeatInterval
	}
	if c.IdleTimeout < 2*c.HeartbeatInterval {
		return fmt.Errorf("IDLE_TIMEOUT=%s must be at least twice HEARTBEAT_INTERVAL=%s: clients are told to ping every heartbeat, and one late ping must not cut them",
			c.IdleTimeout, c.HeartbeatInterval)
	}
	if !c.RedisTLS {
		for _, s := range []struct {
			name string
			set  bool
		}{{EnvRedisTLSCAFile, c.RedisTLSCAFile != ""}, {EnvRedisTLSServerName, c.RedisTLSServerName != ""}, {EnvRedisTLSInsecureSkipVerify, c.RedisTLSInsecureSkipVerify}} {
			if s.set {
				return fmt.Errorf("%s is set but REDIS_TLS is false: set REDIS_TLS=true to use TLS to Redis", s.name)
			}
		}
	}
	if c.RedisTLSInsecureSkipVerify && c.RedisTLSCAFile != "" {
		return fmt.Errorf("%s and %s are both set: skipping verification ignores the CA, set one of them", EnvRedisTLSInsecureSkipVerify, EnvRedisTLSCAFile)
	}
	if c.WSPort == c.MetricsPort {
		return fmt.Errorf("WS_PORT and METRICS_PORT are both %d; /metrics needs its own port", c.WSPort)
	}
	var sources []string
	for _, s := range []struct{ name, value string }{
		{"AUTH_JWT_SECRET", c.AuthJWTSecret}, {"AUTH_JWT_SECRET_FILE", c.AuthJWTSecretFile},
		{"AUTH_JWT_PUBLIC_KEY_FILE", c.AuthJWTPublicKeyFile}, {"AUTH_JWT_JWKS_URL", c.AuthJWTJWKSURL},
	} {
		if s.value != "" {
			sources = append(sources, s.name)
		}
	}
	if len(sources) > 1 {
		all := "all"
		if len(sources) == 2 {
			all = "both"
		}
		return fmt.Errorf("%s are %s set; give one JWT key source", strings.Join(sources, " and "), all)
	}
	if len(sources) == 0 {
		if c.AuthRequireWatchClaim {
			return errors.New("AUTH_REQUIRE_WATCH_CLAIM is true but no JWT key source is set (AUTH_JWT_SECRET_FILE, AUTH_JWT_PUBLIC_KEY_FILE, AUTH_JWT_JWKS_URL or AUTH_JWT_SECRET), so no token, and no watch claim, would be checked")
		}
		for _, s := range []struct{ name, value string }{{"AUTH_JWT_AUDIENCE", c.AuthJWTAudience}, {"AUTH_JWT_ISSUER", c.AuthJWTIssuer}} {
			if s.value != "" {
				return fmt.Errorf("%s is set but no JWT key source is (AUTH_JWT_SECRET_FILE, AUTH_JWT_PUBLIC_KEY_FILE, AUTH_JWT_JWKS_URL or AUTH_JWT_SECRET), so no token would be checked", s.name)
			}
		}
	}
	return nil
}

// Auth reports whether a JWT is required.
func (c Config) Auth() bool {
	return c.AuthJWTSecret != "" || c.AuthJWTSecretFile != "" || c.AuthJWTPublicKeyFile != "" || c.AuthJWTJWKSURL != ""
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New("not a boolean (true or false)")
	}
	return b, nil
}

// existingFile accepts an empty path or the path of a file that exists.
func existingFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	if _, err := os.Stat(path); err != nil {
		return "", err
	}
	return path, nil
}

func parsePort(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return 0, errors.New("not a port number (1-65535)")
	}
	return n, nil
}

// ParseNodes splits a list of host:port seed nodes (REDIS_NODES, or the
// content of REDIS_NODES_FILE) separated by commas or white space.
func ParseNodes(v string) ([]string, error) {
	var out []string
	for _, n := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		if err := ValidateRedisNode(n); err != nil {
			return nil, fmt.Errorf("entry %q: %w", n, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// ValidateRedisNode checks one Redis seed node: host:port with a host and a
// port from 1 to 65535. It is the rule for REDIS_NODES, which the Redis
// store checks again for callers that do not go through Load.
func ValidateRedisNode(n string) error {
	host, port, err := net.SplitHostPort(n)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return errors.New("missing port")
		}
		return errors.New("not host:port")
	}
	if host == "" {
		return errors.New("missing host")
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Errorf("port %q is not a port number (1-65535)", port)
	}
	return nil
}

// durationInto parses a Go duration ("60s", "1m30s") into a field; zero
// is allowed only when zeroOK.
func durationInto(field func(*Config) *time.Duration, zeroOK bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errors.New(`not a duration (like "60s", "1m30s", "500ms")`)
		}
		if d < 0 || (d == 0 && !zeroOK) {
			if zeroOK {
				return errors.New("must not be negative")
			}
			return errors.New("must be positive")
		}
		*field(c) = d
		return nil
	}
}
