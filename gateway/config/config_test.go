package config

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		WSPort: 8080, MetricsPort: 9090, MaxPayloadBytes: 4096,
		PresenceTTL: 60 * time.Second, HeartbeatInterval: 20 * time.Second, IdleTimeout: 60 * time.Second,
		ShutdownGrace: 25 * time.Second, MessageRate: 20, MessageBurst: 40,
		AuthJWTRequireExp: true, AuthJWTLeeway: 5 * time.Second,
		LogLevel: slog.LevelInfo, LogFormat: "json",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if c.Auth() {
		t.Fatal("no auth by default")
	}
}

func TestEnvAndFlags(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--ws-port=7000", "--idle-timeout", "25s"}, env(map[string]string{
		"WS_PORT": "6000", "METRICS_PORT": "6001", "REDIS_NODES": " redis-0:6379, 10.0.0.1:7000 ,[::1]:7001",
		"REDIS_USERNAME": "gw", "REDIS_PASSWORD_FILE": pw, "REDIS_TLS": "true",
		"WS_MAX_PAYLOAD_BYTES": "8192", "PRESENCE_TTL": "30s", "HEARTBEAT_INTERVAL": "10s",
		"MAX_CONNECTIONS": "100", "SHUTDOWN_GRACE": "0s", "ALLOWED_ORIGINS": "https://a.example, http://localhost:3000/",
		"AUTH_JWT_SECRET": "k", "MESSAGE_RATE": "2.5", "MESSAGE_BURST": "5", "OFFLINE_GRACE": "3s",
		"LOG_LEVEL": "debug", "LOG_FORMAT": "text",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.WSPort != 7000 || c.MetricsPort != 6001 || c.IdleTimeout != 25*time.Second {
		t.Fatalf("flag must win over env: %+v", c)
	}
	if !reflect.DeepEqual(c.RedisNodes, []string{"redis-0:6379", "10.0.0.1:7000", "[::1]:7001"}) ||
		c.RedisPasswordFile != pw || c.RedisPassword != "" || c.RedisUsername != "gw" || !c.RedisTLS {
		t.Fatalf("redis settings: %+v", c)
	}
	if !reflect.DeepEqual(c.AllowedOrigins, []string{"https://a.example", "http://localhost:3000"}) {
		t.Fatalf("origins: %q", c.AllowedOrigins)
	}
	if c.MaxPayloadBytes != 8192 || c.PresenceTTL != 30*time.Second || c.MaxConnections != 100 ||
		c.ShutdownGrace != 0 || c.MessageRate != 2.5 || c.MessageBurst != 5 || c.OfflineGrace != 3*time.Second ||
		c.LogLevel != slog.LevelDebug || c.LogFormat != "text" || !c.Auth() {
		t.Fatalf("settings: %+v", c)
	}
}

// The settings the operator gives as files (mounted ConfigMap and Secret
// keys, re-read by the store): the seeds file is read at start too (a bad
// one fails at once, naming the entry), its nodes may be separated by
// commas or new lines, an absent username file means the default user,
// and each file form excludes its value form.
func TestRedisFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nodes := write("nodes", "redis-0.redis.ns.svc:6379,\nredis-1.redis.ns.svc:6379\n")
	pw := write("pw", "s3cret\n")
	user := filepath.Join(dir, "username") // absent
	c, err := Load(nil, env(map[string]string{
		"REDIS_NODES_FILE": nodes, "REDIS_PASSWORD_FILE": pw, "REDIS_USERNAME_FILE": user,
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.RedisNodes, []string{"redis-0.redis.ns.svc:6379", "redis-1.redis.ns.svc:6379"}) ||
		c.RedisNodesFile != nodes || c.RedisUsernameFile != user || c.RedisPasswordFile != pw {
		t.Fatalf("redis files: %+v", c)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"REDIS_NODES_FILE": write("bad", "redis-0")}, `REDIS_NODES_FILE="` + dir + `/bad": entry "redis-0": missing port`},
		{map[string]string{"REDIS_NODES_FILE": write("empty", "\n")}, `REDIS_NODES_FILE="` + dir + `/empty": the file lists no node`},
		{map[string]string{"REDIS_NODES": "a:1", "REDIS_NODES_FILE": nodes}, `REDIS_NODES_FILE="` + nodes + `": REDIS_NODES is set too; use one of them`},
		{map[string]string{"REDIS_USERNAME": "gw", "REDIS_USERNAME_FILE": user}, `REDIS_USERNAME_FILE="` + user + `": REDIS_USERNAME is set too; use one of them`},
		{map[string]string{"REDIS_PASSWORD": "p", "REDIS_PASSWORD_FILE": pw}, `REDIS_PASSWORD_FILE="` + pw + `": REDIS_PASSWORD is set too; use one of them`},
	} {
		if _, err := Load(nil, env(tc.env), io.Discard); err == nil || err.Error() != tc.want {
			t.Errorf("Load(%v) error = %v\nwant %s", tc.env, err, tc.want)
		}
	}
}

// The TLS settings the operator derives from a RedisCluster's spec.tls:
// the CA file (a mounted Secret or ConfigMap key), the server name and the
// test-only skip; each needs REDIS_TLS, and skipping verification excludes
// a CA.
func TestRedisTLS(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(nil, env(map[string]string{
		EnvRedisTLS: "true", EnvRedisTLSCAFile: ca, EnvRedisTLSServerName: "redis.example.internal",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.RedisTLS || c.RedisTLSCAFile != ca || c.RedisTLSServerName != "redis.example.internal" || c.RedisTLSInsecureSkipVerify {
		t.Fatalf("redis TLS settings: %+v", c)
	}
	c, err = Load([]string{"--redis-tls", "true", "--redis-tls-insecure-skip-verify", "true"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.RedisTLS || !c.RedisTLSInsecureSkipVerify {
		t.Fatalf("flags: %+v", c)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvRedisTLSCAFile: ca}, "REDIS_TLS_CA_FILE is set but REDIS_TLS is false: set REDIS_TLS=true to use TLS to Redis"},
		{map[string]string{EnvRedisTLSServerName: "redis"}, "REDIS_TLS_SERVER_NAME is set but REDIS_TLS is false: set REDIS_TLS=true to use TLS to Redis"},
		{map[string]string{EnvRedisTLSInsecureSkipVerify: "true"}, "REDIS_TLS_INSECURE_SKIP_VERIFY is set but REDIS_TLS is false: set REDIS_TLS=true to use TLS to Redis"},
		{map[string]string{EnvRedisTLS: "true", EnvRedisTLSInsecureSkipVerify: "true", EnvRedisTLSCAFile: ca},
			"REDIS_TLS_INSECURE_SKIP_VERIFY and REDIS_TLS_CA_FILE are both set: skipping verification ignores the CA, set one of them"},
		{map[string]string{EnvRedisTLS: "true", EnvRedisTLSServerName: "redis:6379"}, `REDIS_TLS_SERVER_NAME="redis:6379": a host name, without port or scheme`},
		{map[string]string{EnvRedisTLS: "true", EnvRedisTLSInsecureSkipVerify: "yes please"}, `REDIS_TLS_INSECURE_SKIP_VERIFY="yes please": not a boolean (true or false)`},
	} {
		if _, err := Load(nil, env(tc.env), io.Discard); err == nil || err.Error() != tc.want {
			t.Errorf("Load(%v) error = %v\nwant %s", tc.env, err, tc.want)
		}
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		env  map[string]string
		args []string
		want string // the whole error line
	}{
		{env: map[string]string{"REDIS_NODES": "redis-0"}, want: `REDIS_NODES="redis-0": entry "redis-0": missing port`},
		{env: map[string]string{"REDIS_NODES": "a:1,:2"}, want: `REDIS_NODES="a:1,:2": entry ":2": missing host`},
		{env: map[string]string{"REDIS_NODES": "a:x"}, want: `REDIS_NODES="a:x": entry "a:x": port "x" is not a port number (1-65535)`},
		{env: map[string]string{"WS_PORT": "http"}, want: `WS_PORT="http": not a port number (1-65535)`},
		{env: map[string]string{"WS_PORT": "70000"}, want: `WS_PORT="70000": not a port number (1-65535)`},
		{args: []string{"--metrics-port=0"}, want: `--metrics-port="0": not a port number (1-65535)`},
		{env: map[string]string{"PRESENCE_TTL": "soon"}, want: `PRESENCE_TTL="soon": not a duration (like "60s", "1m30s", "500ms")`},
		{env: map[string]string{"HEARTBEAT_INTERVAL": "0s"}, want: `HEARTBEAT_INTERVAL="0s": must be positive`},
		{env: map[string]string{"IDLE_TIMEOUT": "-1s"}, want: `IDLE_TIMEOUT="-1s": must be positive`},
		{env: map[string]string{"SHUTDOWN_GRACE": "-1s"}, want: `SHUTDOWN_GRACE="-1s": must not be negative`},
		{env: map[string]string{"OFFLINE_GRACE": "x"}, want: `OFFLINE_GRACE="x": not a duration (like "60s", "1m30s", "500ms")`},
		{env: map[string]string{"PRESENCE_TTL": "40s"}, want: `PRESENCE_TTL=40s must be above twice HEARTBEAT_INTERVAL=20s, so that one missed refresh does not expire a live connection`},
		{env: map[string]string{"WS_MAX_PAYLOAD_BYTES": "10"}, want: `WS_MAX_PAYLOAD_BYTES="10": not an integer between 64 and 1048576`},
		{env: map[string]string{"MAX_CONNECTIONS": "-1"}, want: `MAX_CONNECTIONS="-1": not a non-negative integer`},
		{env: map[string]string{"MESSAGE_RATE": "0"}, want: `MESSAGE_RATE="0": not a positive number`},
		{env: map[string]string{"MESSAGE_BURST": "1.5"}, want: `MESSAGE_BURST="1.5": not a positive integer`},
		{env: map[string]string{"REDIS_TLS": "yes"}, want: `REDIS_TLS="yes": not a boolean (true or false)`},
		{env: map[string]string{"LOG_FORMAT": "xml"}, want: `LOG_FORMAT="xml": must be json or text`},
		{env: map[string]string{"ALLOWED_ORIGINS": "example.com"}, want: `ALLOWED_ORIGINS="example.com": entry "example.com": an origin is scheme://host[:port], e.g. https://app.example.com`},
		{env: map[string]string{"METRICS_PORT": "8080"}, want: `WS_PORT and METRICS_PORT are both 8080; /metrics needs its own port`},
		{env: map[string]string{"REDIS_PASSWORD_FILE": "/nonexistent/pw"}, want: `REDIS_PASSWORD_FILE="/nonexistent/pw": open /nonexistent/pw: no such file or directory`},
		{env: map[string]string{"AUTH_JWT_PUBLIC_KEY_FILE": "/nonexistent/k.pem"}, want: `AUTH_JWT_PUBLIC_KEY_FILE="/nonexistent/k.pem": stat /nonexistent/k.pem: no such file or directory`},
		{env: map[string]string{"AUTH_JWT_SECRET_FILE": "/nonexistent/s"}, want: `AUTH_JWT_SECRET_FILE="/nonexistent/s": stat /nonexistent/s: no such file or directory`},
		{env: map[string]string{"AUTH_JWT_JWKS_URL": "idp.example/keys"}, want: `AUTH_JWT_JWKS_URL="idp.example/keys": not an http(s):// URL`},
		{env: map[string]string{"AUTH_JWT_SECRET": "k", "AUTH_JWT_JWKS_URL": "https://idp.example/keys"}, want: `AUTH_JWT_SECRET and AUTH_JWT_JWKS_URL are both set; give one JWT key source`},
		{env: map[string]string{"AUTH_JWT_AUDIENCE": "presence"}, want: `AUTH_JWT_AUDIENCE is set but no JWT key source is (AUTH_JWT_SECRET_FILE, AUTH_JWT_PUBLIC_KEY_FILE, AUTH_JWT_JWKS_URL or AUTH_JWT_SECRET), so no token would be checked`},
		{env: map[string]string{"AUTH_JWT_REQUIRE_EXP": "maybe"}, want: `AUTH_JWT_REQUIRE_EXP="maybe": not a boolean (true or false)`},
		{env: map[string]string{"AUTH_JWT_LEEWAY": "10m"}, want: `AUTH_JWT_LEEWAY="10m": at most 5m0s`},
		{env: map[string]string{"AUTH_JWT_LEEWAY": "-1s"}, want: `AUTH_JWT_LEEWAY="-1s": must not be negative`},
		{env: map[string]string{"PPROF_ENABLED": "on"}, want: `PPROF_ENABLED="on": not a boolean (true or false)`},
		{env: map[string]string{"WS_MAX_PAYLOAD_BYTES": "2097152"}, want: `WS_MAX_PAYLOAD_BYTES="2097152": not an integer between 64 and 1048576`},
		// Settings valid alone that contradict each other (issue 9, defect 11).
		{env: map[string]string{"HEARTBEAT_INTERVAL": "2s", "IDLE_TIMEOUT": "1500ms"}, want: `IDLE_TIMEOUT=1.5s must be at least twice HEARTBEAT_INTERVAL=2s: clients are told to ping every heartbeat, and one late ping must not cut them`},
		{env: map[string]string{"HEARTBEAT_INTERVAL": "2s", "IDLE_TIMEOUT": "2s"}, want: `IDLE_TIMEOUT=2s must be at least twice HEARTBEAT_INTERVAL=2s: clients are told to ping every heartbeat, and one late ping must not cut them`},
		{env: map[string]string{"HEARTBEAT_INTERVAL": "20s", "IDLE_TIMEOUT": "30s"}, want: `IDLE_TIMEOUT=30s must be at least twice HEARTBEAT_INTERVAL=20s: clients are told to ping every heartbeat, and one late ping must not cut them`},
		{args: []string{"--nope=1"}, want: `flag provided but not defined: -nope`},
		{args: []string{"extra"}, want: `unexpected argument "extra" (settings are flags like --ws-port=8080 or environment variables)`},
	}
	for _, tc := range tests {
		_, err := Load(tc.args, env(tc.env), io.Discard)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Load(%v, %v) error = %v\nwant %s", tc.args, tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
	if _, err := Load(nil, env(map[string]string{"LOG_LEVEL": "loud"}), io.Discard); err == nil || !strings.HasPrefix(err.Error(), `LOG_LEVEL="loud": `) {
		t.Errorf("LOG_LEVEL=loud: %v", err)
	}
}

// TestIdleTimeoutFollowsTheHeartbeat: left unset, IDLE_TIMEOUT is three
// heartbeats, so a longer heartbeat (the operator sets it from the CRD)
// never contradicts the default.
func TestIdleTimeoutFollowsTheHeartbeat(t *testing.T) {
	c, err := Load(nil, env(map[string]string{"HEARTBEAT_INTERVAL": "40s", "PRESENCE_TTL": "90s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.IdleTimeout != 2*time.Minute {
		t.Fatalf("IDLE_TIMEOUT = %s; want 3 x 40s", c.IdleTimeout)
	}
	c, err = Load(nil, env(map[string]string{"HEARTBEAT_INTERVAL": "2s", "PRESENCE_TTL": "5s", "IDLE_TIMEOUT": "4s"}), io.Discard)
	if err != nil || c.IdleTimeout != 4*time.Second {
		t.Fatalf("IDLE_TIMEOUT of exactly two heartbeats: %v %v", c.IdleTimeout, err)
	}
}

func TestAuthSettings(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(nil, env(map[string]string{
		"AUTH_JWT_SECRET_FILE": secret, "AUTH_JWT_AUDIENCE": "presence", "AUTH_JWT_ISSUER": "https://idp.example",
		"AUTH_JWT_REQUIRE_EXP": "false", "AUTH_JWT_LEEWAY": "0s", "PPROF_ENABLED": "true",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Auth() || c.AuthJWTSecretFile != secret || c.AuthJWTAudience != "presence" || c.AuthJWTIssuer != "https://idp.example" ||
		c.AuthJWTRequireExp || c.AuthJWTLeeway != 0 || !c.PprofEnabled {
		t.Fatalf("auth settings: %+v", c)
	}
	if c.AuthJWTSecret != "" {
		t.Fatal("the secret's value must not be read into the config; the verifier reads (and re-reads) the file")
	}
	c, err = Load(nil, env(map[string]string{"AUTH_JWT_JWKS_URL": "https://idp.example/.well-known/jwks.json"}), io.Discard)
	if err != nil || !c.Auth() || c.AuthJWTJWKSURL != "https://idp.example/.well-known/jwks.json" {
		t.Fatalf("JWKS URL: %+v %v", c, err)
	}
}

func TestHelp(t *testing.T) {
	var b strings.Builder
	_, err := Load([]string{"-h"}, env(nil), &b)
	if !errors.Is(err, ErrHelp) || !strings.Contains(b.String(), "env PRESENCE_TTL") {
		t.Fatalf("help: %v\n%s", err, b.String())
	}
}

func TestVersionFlag(t *testing.T) {
	// --version wins over settings that would not load: it starts nothing.
	_, err := Load([]string{"--version"}, env(map[string]string{"WS_PORT": "not-a-port"}), io.Discard)
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("--version: %v, want ErrVersion", err)
	}
}
