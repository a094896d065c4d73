package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presencekit/presence-operator/gateway/auth"
	"github.com/presencekit/presence-operator/gateway/auth/authtest"
	"github.com/presencekit/presence-operator/internal/poll"
)

// soon is an exp three to four seconds ahead (exp has whole seconds):
// time for a test to use the connection first, even on a loaded machine,
// and less than the 5 s a test client waits for a frame.
func soon() int64 { return time.Now().Add(4 * time.Second).Unix() }

func later() int64 { return time.Now().Add(time.Hour).Unix() }

// shortLeeway keeps the expiry tests short: a connection is closed at
// exp plus this.
var shortLeeway = auth.Options{Leeway: time.Millisecond}

func hsVerifier(t *testing.T, secret string, o auth.Options) *auth.Verifier {
	t.Helper()
	v, err := auth.NewHS256(secret, o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestTokenExpiryClosesWith4001: a connection whose token expires, without
// a refresh, is closed with 4001 "token expired".
func TestTokenExpiryClosesWith4001(t *testing.T) {
	g := start(t, setup{verifier: hsVerifier(t, "k", shortLeeway)})
	c, err := g.dialRaw("/?token="+hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": soon()}), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.expectType("welcome")
	c.expectClose(4001, "token expired")
	poll.Eventually(t, 5*time.Second, "the disconnection counted as token_expired", func() (bool, string) {
		n := g.counter(g.metrics.DisconnectionsTotal.WithLabelValues("token_expired"))
		return n == 1, fmt.Sprintf("token_expired disconnections = %v", n)
	})
}

// TestTokenRefresh: a refresh with a new token for the same user answers
// ok and keeps the connection past the old token's expiry; a token for
// another user gets forbidden and one that does not verify gets
// invalid_token, and both leave the connection open until the old token
// expires.
func TestTokenRefresh(t *testing.T) {
	g := start(t, setup{verifier: hsVerifier(t, "k", shortLeeway)})
	exp := soon()
	first := hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": exp})

	refreshed, err := g.dialRaw("/?token="+first, nil)
	if err != nil {
		t.Fatal(err)
	}
	refreshed.expectType("welcome")
	refreshed.send(map[string]any{"type": "refresh", "id": 1, "token": hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": later()})})
	if m := refreshed.expectType("ok"); m["id"] != float64(1) {
		t.Fatalf("ok %v, want id 1", m)
	}

	refused, err := g.dialRaw("/?token="+first, nil)
	if err != nil {
		t.Fatal(err)
	}
	refused.expectType("welcome")
	refused.send(map[string]any{"type": "refresh", "id": "other", "token": hsToken(t, "k", jwt.MapClaims{"sub": "bob", "exp": later()})})
	if m := refused.expectError("forbidden"); m["id"] != "other" {
		t.Fatalf("forbidden %v, want id other", m)
	}
	refused.alive()
	for _, bad := range []string{
		hsToken(t, "wrong", jwt.MapClaims{"sub": "alice", "exp": later()}),                       // signature
		hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}), // expired
		hsToken(t, "k", jwt.MapClaims{"sub": "alice"}),                                           // no exp
		"not.a.token",
	} {
		refused.send(map[string]any{"type": "refresh", "id": 2, "token": bad})
		if m := refused.expectError("invalid_token"); m["id"] != float64(2) {
			t.Fatalf("invalid_token %v, want id 2", m)
		}
	}
	refused.alive()

	// The connection that was refused keeps its first token and is closed
	// when it expires; by then the refreshed one would have been closed in
	// the same sweep, so it answering afterwards shows the refresh held.
	refused.expectClose(4001, "token expired")
	refreshed.alive()
}

// TestRefreshWithoutAuth: a gateway without tokens says so.
func TestRefreshWithoutAuth(t *testing.T) {
	g := start(t, setup{})
	c := g.dialWelcome("u1")
	c.send(map[string]any{"type": "refresh", "id": 3, "token": "a.b.c"})
	if m := c.expectError("bad_request"); m["id"] != float64(3) {
		t.Fatalf("error %v, want id 3", m)
	}
	c.alive()
}

// TestTokenWithoutExpNeverExpires: with AUTH_JWT_REQUIRE_EXP=false a token
// without exp is accepted and its connection is not closed for it; by
// default such a token is refused.
func TestTokenWithoutExpNeverExpires(t *testing.T) {
	noExp := hsToken(t, "k", jwt.MapClaims{"sub": "alice"})
	strict := start(t, setup{verifier: hsVerifier(t, "k", shortLeeway)})
	refusal(t, strict, "/?token="+noExp, nil, http.StatusUnauthorized, "unauthorized")

	g := start(t, setup{verifier: hsVerifier(t, "k", auth.Options{AllowNoExp: true, Leeway: time.Millisecond})})
	forever, err := g.dialRaw("/?token="+noExp, nil)
	if err != nil {
		t.Fatal(err)
	}
	forever.expectType("welcome")
	// A connection with a short token is the clock: once the sweep closed
	// it, the one without exp has been looked at too.
	clock, err := g.dialRaw("/?token="+hsToken(t, "k", jwt.MapClaims{"sub": "bob", "exp": soon()}), nil)
	if err != nil {
		t.Fatal(err)
	}
	clock.expectType("welcome")
	clock.expectClose(4001, "token expired")
	forever.alive()
}

// rotation is one key source that a test rotates from an old key to a new
// one: sign makes a token with the old or the new key, and the steps
// publish the new key beside the old one, then withdraw the old one.
type rotation struct {
	verifier       *auth.Verifier
	signOld        func(jwt.MapClaims) string
	signNew        func(jwt.MapClaims) string
	overlap, final func()
}

// TestKeyRotationWithoutRestart rotates the key of each key source while a
// gateway serves: a connection made with the old key refreshes with a
// token of the new key, new connections use the new key, and once the old
// key is withdrawn its tokens are refused, all without a new Verifier.
func TestKeyRotationWithoutRestart(t *testing.T) {
	fast := auth.Options{FileCheckInterval: time.Nanosecond}
	sources := map[string]func(t *testing.T) rotation{
		"AUTH_JWT_SECRET_FILE": func(t *testing.T) rotation {
			p := filepath.Join(t.TempDir(), "secret")
			writeAtomically(t, p, []byte("old-secret\n"))
			v, err := auth.NewFromSecretFile(p, fast)
			if err != nil {
				t.Fatal(err)
			}
			return rotation{
				verifier: v,
				signOld:  func(c jwt.MapClaims) string { return hsToken(t, "old-secret", c) },
				signNew:  func(c jwt.MapClaims) string { return hsToken(t, "new-secret", c) },
				// A secret file holds one secret: no overlap step.
				overlap: func() { writeAtomically(t, p, []byte("new-secret\n")) },
				final:   func() {},
			}
		},
		"AUTH_JWT_PUBLIC_KEY_FILE": func(t *testing.T) rotation {
			oldKey, newKey := authtest.NewKey(t, ""), authtest.NewKey(t, "")
			p := filepath.Join(t.TempDir(), "keys.pem")
			writeAtomically(t, p, pemKeys(t, oldKey.Private, nil))
			v, err := auth.NewFromPublicKeyFile(p, fast)
			if err != nil {
				t.Fatal(err)
			}
			return rotation{
				verifier: v,
				signOld:  func(c jwt.MapClaims) string { return oldKey.Sign(t, c) },
				signNew:  func(c jwt.MapClaims) string { return newKey.Sign(t, c) },
				overlap:  func() { writeAtomically(t, p, pemKeys(t, oldKey.Private, newKey.Private)) },
				final:    func() { writeAtomically(t, p, pemKeys(t, newKey.Private, nil)) },
			}
		},
		"AUTH_JWT_JWKS_URL": func(t *testing.T) rotation {
			oldKey, newKey := authtest.NewKey(t, "old"), authtest.NewKey(t, "new")
			idp := authtest.NewJWKS(t, oldKey)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			v, err := auth.NewFromJWKS(ctx, idp.URL, auth.Options{}, auth.JWKSOptions{Refresh: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return rotation{
				verifier: v,
				signOld:  func(c jwt.MapClaims) string { return oldKey.Sign(t, c) },
				signNew:  func(c jwt.MapClaims) string { return newKey.Sign(t, c) },
				overlap:  func() { idp.Publish(oldKey, newKey) },
				final:    func() { idp.Publish(newKey) },
			}
		},
	}
	for name, source := range sources {
		t.Run(name, func(t *testing.T) {
			r := source(t)
			g := start(t, setup{verifier: r.verifier})
			conn, err := g.dialRaw("/?token="+r.signOld(jwt.MapClaims{"sub": "alice", "exp": later()}), nil)
			if err != nil {
				t.Fatal(err)
			}
			conn.expectType("welcome")

			r.overlap()
			newToken := r.signNew(jwt.MapClaims{"sub": "alice", "exp": later()})
			poll.Eventually(t, 10*time.Second, "an upgrade with the new key accepted", func() (bool, string) {
				c, err := g.dialRaw("/?token="+newToken, nil)
				if err != nil {
					return false, err.Error()
				}
				_ = c.c.CloseNow()
				return true, ""
			})
			conn.send(map[string]any{"type": "refresh", "id": "r", "token": newToken})
			conn.expectType("ok")

			r.final()
			oldToken := r.signOld(jwt.MapClaims{"sub": "alice", "exp": later()})
			poll.Eventually(t, 10*time.Second, "an upgrade with the withdrawn key refused", func() (bool, string) {
				resp, _ := g.get("/v1/presence?userId=alice&token="+oldToken, nil)
				return resp.StatusCode == http.StatusUnauthorized, fmt.Sprint("HTTP ", resp.StatusCode)
			})
			refusal(t, g, "/?token="+oldToken, nil, http.StatusUnauthorized, "unauthorized")
			conn.alive()
		})
	}
}

func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// pemKeys is a PEM file of one or two public keys.
func pemKeys(t *testing.T, a, b *ecdsa.PrivateKey) []byte {
	t.Helper()
	var out []byte
	for _, k := range []*ecdsa.PrivateKey{a, b} {
		if k == nil {
			continue
		}
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return out
}
