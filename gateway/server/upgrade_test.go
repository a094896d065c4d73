package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/presencekit/presence-operator/gateway/auth"
	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/internal/poll"
)

// refusal checks an upgrade answered with plain HTTP and the JSON error.
func refusal(t *testing.T, g *gateway, path string, h http.Header, status int, code string) reply {
	t.Helper()
	hdr := upgradeHeaders()
	for k, v := range h {
		hdr[k] = v
	}
	resp, body := g.get(path, hdr)
	if resp.StatusCode != status || body["error"] != code || body["message"] == "" {
		t.Fatalf("GET %s: %d %v, want %d with error %q and a message", path, resp.StatusCode, body, status, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	return resp
}

func TestWelcome(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.HeartbeatInterval, c.PresenceTTL = 5*time.Second, 30*time.Second }})
	c := g.dial("u1")
	w := c.read()
	if w["type"] != "welcome" || w["userId"] != "u1" || w["heartbeatMs"] != 5000.0 || w["ttlMs"] != 30000.0 {
		t.Fatalf("welcome = %v", w)
	}
	id, _ := w["connectionId"].(string)
	w2 := g.dial("u1").read()
	if id == "" || w2["connectionId"] == id {
		t.Fatalf("connection ids %q and %v must be set and distinct", id, w2["connectionId"])
	}
	if got := g.counter(g.metrics.Connections); got != 2 {
		t.Fatalf("connections gauge %v, want 2", got)
	}
}

func TestRefuseMissingUserID(t *testing.T) {
	g := start(t, setup{})
	refusal(t, g, "/", nil, http.StatusBadRequest, "invalid_user_id")
	refusal(t, g, "/?userId=", nil, http.StatusBadRequest, "invalid_user_id")
}

func TestRefuseInvalidUserID(t *testing.T) {
	g := start(t, setup{})
	for _, id := range []string{"a%20b", "a/b", strings.Repeat("x", 129), "%C3%A9", "a&userId=b"} {
		refusal(t, g, "/?userId="+id, nil, http.StatusBadRequest, "invalid_user_id")
	}
	if _, err := g.dialRaw("/?userId=a%20b", nil); err == nil {
		t.Fatal("a WebSocket client with an invalid id was upgraded")
	}
}

func TestPlainGETIs426(t *testing.T) {
	g := start(t, setup{})
	resp, body := g.get("/", nil)
	if resp.StatusCode != http.StatusUpgradeRequired || body["error"] != "upgrade_required" || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("plain GET /: %d %v", resp.StatusCode, body)
	}
}

func TestRefuseOrigin(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.AllowedOrigins = []string{"https://app.example.com"} }})
	refusal(t, g, "/?userId=u1", http.Header{"Origin": {"https://evil.example.com"}}, http.StatusForbidden, "origin_not_allowed")
	c, err := g.dialRaw("/?userId=u1", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://app.example.com"}}})
	if err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	c.expectType("welcome")
	// Without an Origin (not a browser) the upgrade is allowed.
	g.dialWelcome("u2")
}

func TestAnyOriginWhenUnset(t *testing.T) {
	g := start(t, setup{})
	c, err := g.dialRaw("/?userId=u1", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://elsewhere.example"}}})
	if err != nil {
		t.Fatalf("cross-origin upgrade refused with ALLOWED_ORIGINS empty: %v", err)
	}
	c.expectType("welcome")
}

func TestRefuseAtMaxConnections(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.MaxConnections = 2 }})
	a := g.connect("a", false)
	g.connect("b", false)
	resp := refusal(t, g, "/?userId=c", nil, http.StatusServiceUnavailable, "too_many_connections")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	// A slot frees when a connection closes.
	_ = a.Close()
	poll.Eventually(t, 5*time.Second, "a slot to free up", func() (bool, string) {
		n := g.srv.Connections()
		return n < 2, fmt.Sprint(n, " connections")
	})
	g.connect("c", false)
}

func TestMethodNotAllowed(t *testing.T) {
	g := start(t, setup{})
	resp, err := http.Post(g.url+"/?userId=a", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: %d", resp.StatusCode)
	}
}

func hsToken(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthHS256(t *testing.T) {
	v, err := auth.NewHS256("s3cret", auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := start(t, setup{verifier: v})
	good := hsToken(t, "s3cret", jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})

	refusal(t, g, "/?userId=alice", nil, http.StatusUnauthorized, "unauthorized")
	refusal(t, g, "/?userId=alice&token="+hsToken(t, "wrong", jwt.MapClaims{"sub": "alice"}), nil, http.StatusUnauthorized, "unauthorized")
	refusal(t, g, "/?token="+hsToken(t, "s3cret", jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}), nil, http.StatusUnauthorized, "unauthorized")
	refusal(t, g, "/?token="+hsToken(t, "s3cret", jwt.MapClaims{"sub": "alice", "nbf": time.Now().Add(time.Hour).Unix()}), nil, http.StatusUnauthorized, "unauthorized")
	refusal(t, g, "/?userId=bob&token="+good, nil, http.StatusForbidden, "user_mismatch")

	// Query parameter, with and without a matching userId.
	c, err := g.dialRaw("/?userId=alice&token="+good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.read(); w["userId"] != "alice" {
		t.Fatalf("welcome %v", w)
	}
	c, err = g.dialRaw("/?token="+good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.read(); w["userId"] != "alice" {
		t.Fatalf("welcome %v: the user id comes from sub", w)
	}
	// Authorization: Bearer.
	c, err = g.dialRaw("/", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + good}}})
	if err != nil {
		t.Fatal(err)
	}
	if w := c.read(); w["userId"] != "alice" {
		t.Fatalf("welcome %v", w)
	}
	// The HTTP API wants a token too.
	if resp, _ := g.get("/v1/presence?userId=alice", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/v1/presence without token: %d", resp.StatusCode)
	}
	if resp, body := g.get("/v1/presence?userId=alice&token="+good, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/v1/presence with token: %d %v", resp.StatusCode, body)
	}
}

func TestAuthES256(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	p := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewFromPublicKeyFile(p, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := start(t, setup{verifier: v})
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "eve", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := g.dialRaw("/?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.read(); w["userId"] != "eve" {
		t.Fatalf("welcome %v", w)
	}
	refusal(t, g, "/?token="+hsToken(t, "x", jwt.MapClaims{"sub": "eve"}), nil, http.StatusUnauthorized, "unauthorized")
}

// TestFailedHandshakeLeavesNoPresence: an upgrade request the WebSocket
// library refuses (no Sec-WebSocket-Key) does not touch the store: a
// watcher of that user sees no online/offline events.
func TestFailedHandshakeLeavesNoPresence(t *testing.T) {
	g := start(t, setup{})
	w := g.connect("watcher", true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Subscribe(ctx, "ghost", "marker"); err != nil {
		t.Fatal(err)
	}
	hdr := upgradeHeaders()
	hdr.Del("Sec-Websocket-Key")
	req, err := http.NewRequest(http.MethodGet, g.url+"/?userId=ghost", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("upgrade without Sec-WebSocket-Key: %d, want 400", resp.StatusCode)
	}
	// Marker's online event comes after anything about ghost.
	g.connect("marker", false)
	for {
		u, snapshot := nextUser(t, w)
		if snapshot {
			continue
		}
		if u.UserID == "ghost" {
			t.Fatalf("the watcher saw ghost change after a failed handshake: %+v", u)
		}
		if u.UserID == "marker" {
			break
		}
	}
}
