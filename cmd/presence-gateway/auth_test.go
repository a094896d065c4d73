package main_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/presencekit/presence-operator/gateway/auth/authtest"
	"github.com/presencekit/presence-operator/internal/gatewayproc"
	"github.com/presencekit/presence-operator/internal/poll"
)

// TestPprofIsOptIn: profiles are served on the metrics port only with
// PPROF_ENABLED=true (issue 9, defect 13).
func TestPprofIsOptIn(t *testing.T) {
	off := run(t)
	pprofURL := strings.TrimSuffix(off.Metrics, "/metrics") + "/debug/pprof/"
	if got := gatewayproc.Status(pprofURL); got != http.StatusNotFound {
		t.Fatalf("/debug/pprof/ by default: %d, want 404", got)
	}
	if got := gatewayproc.Status(strings.TrimSuffix(off.Metrics, "/metrics") + "/debug/pprof/profile?seconds=1"); got != http.StatusNotFound {
		t.Fatalf("/debug/pprof/profile by default: %d, want 404", got)
	}

	on := run(t, "PPROF_ENABLED=true")
	pprofURL = strings.TrimSuffix(on.Metrics, "/metrics") + "/debug/pprof/"
	if got := gatewayproc.Status(pprofURL); got != http.StatusOK {
		t.Fatalf("/debug/pprof/ with PPROF_ENABLED=true: %d, want 200", got)
	}
	if body := scrape(t, pprofURL+"heap?debug=1"); !strings.Contains(body, "heap profile") {
		t.Fatalf("heap profile: %.200q", body)
	}
	if gatewayproc.Status(on.API+"/debug/pprof/") == http.StatusOK {
		t.Fatal("pprof must never be served on the public port")
	}
}

// TestAuthFromEnvironment drives the binary's auth settings end to end:
// AUTH_JWT_SECRET_FILE with AUTH_JWT_AUDIENCE, AUTH_JWT_ISSUER and
// AUTH_JWT_LEEWAY, a token that expires on an open connection (4001), and
// a rotation of the secret file while the process runs.
func TestAuthFromEnvironment(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	write := func(s string) {
		if err := os.WriteFile(secret+".tmp", []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(secret+".tmp", secret); err != nil {
			t.Fatal(err)
		}
	}
	write("first")
	p := run(t, "AUTH_JWT_SECRET_FILE="+secret, "AUTH_JWT_AUDIENCE=presence", "AUTH_JWT_ISSUER=https://idp.example",
		"AUTH_JWT_LEEWAY=0s")
	token := func(key string, exp time.Time, aud string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "alice", "exp": exp.Unix(), "aud": aud, "iss": "https://idp.example",
		}).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hour := time.Now().Add(time.Hour)
	if got := gatewayproc.Status(p.API + "/v1/presence?userId=a&token=" + token("first", hour, "other")); got != http.StatusUnauthorized {
		t.Fatalf("a token for another audience: %d, want 401", got)
	}
	if got := gatewayproc.Status(p.API + "/v1/presence?userId=a&token=" + token("first", hour, "presence")); got != http.StatusOK {
		t.Fatalf("a good token: %d, want 200", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A raw connection: the test wants the close code, which the Go client
	// would answer with a fresh token and a reconnect.
	c, err := dial(ctx, p.WS+"/?token="+token("first", time.Now().Add(4*time.Second), "presence"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.CloseNow() }()
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"welcome"`) {
		t.Fatalf("welcome: %q %v", b, err)
	}
	_, _, err = c.Read(ctx)
	if code := websocket.CloseStatus(err); code != 4001 {
		t.Fatalf("when the token expired: %v, want close 4001", err)
	}

	write("second")
	poll.Eventually(t, 10*time.Second, "the rotated secret in use", func() (bool, string) {
		got := gatewayproc.Status(p.API + "/v1/presence?userId=a&token=" + token("second", hour, "presence"))
		return got == http.StatusOK, http.StatusText(got)
	})
	if got := gatewayproc.Status(p.API + "/v1/presence?userId=a&token=" + token("first", hour, "presence")); got != http.StatusUnauthorized {
		t.Fatalf("the old secret after the rotation: %d, want 401", got)
	}
}

// TestAuthFromJWKS: AUTH_JWT_JWKS_URL, served by the test.
func TestAuthFromJWKS(t *testing.T) {
	k := authtest.NewKey(t, "k1")
	idp := authtest.NewJWKS(t, k)
	p := run(t, "AUTH_JWT_JWKS_URL="+idp.URL)
	tok := k.Sign(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	if got := gatewayproc.Status(p.API + "/v1/presence?userId=a&token=" + tok); got != http.StatusOK {
		t.Fatalf("a token of the provider's key: %d, want 200", got)
	}
	other := authtest.NewKey(t, "k1")
	if got := gatewayproc.Status(p.API + "/v1/presence?userId=a&token=" + other.Sign(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})); got != http.StatusUnauthorized {
		t.Fatalf("a token of another key: %d, want 401", got)
	}
}
