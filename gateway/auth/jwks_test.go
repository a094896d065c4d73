package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presencekit/presence-operator/gateway/auth"
	"github.com/presencekit/presence-operator/gateway/auth/authtest"
	"github.com/presencekit/presence-operator/internal/poll"
)

func claims(sub string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
}

func newJWKSVerifier(t *testing.T, url string, refresh time.Duration) *auth.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := auth.NewFromJWKS(ctx, url, auth.Options{}, auth.JWKSOptions{Refresh: refresh})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestJWKSRotation rotates an identity provider's keys with overlap: a new
// key is published beside the old one, tokens of both are accepted, then
// the old one is withdrawn and its tokens are refused, all with the same
// verifier.
func TestJWKSRotation(t *testing.T) {
	k1, k2 := authtest.NewKey(t, "k1"), authtest.NewKey(t, "k2")
	forged := authtest.NewKey(t, "k1") // same kid, another key
	idp := authtest.NewJWKS(t, k1)
	v := newJWKSVerifier(t, idp.URL, 50*time.Millisecond)

	tok1, tok2 := k1.Sign(t, claims("alice")), k2.Sign(t, claims("bob"))
	if c, err := v.VerifyToken(tok1); err != nil || c.Subject != "alice" {
		t.Fatalf("a token of the published key: %+v %v", c, err)
	}
	if _, err := v.VerifyToken(forged.Sign(t, claims("alice"))); err == nil {
		t.Fatal("a token signed by another key under a published kid was accepted")
	}
	noKID := authtest.Key{Private: k1.Private}
	if _, err := v.VerifyToken(noKID.Sign(t, claims("carol"))); err != nil {
		t.Fatalf("a token without kid, signed by a published key: %v", err)
	}
	if _, err := v.VerifyToken(tok2); err == nil {
		t.Fatal("a token of an unpublished key was accepted")
	}

	// The provider adds k2 and starts signing with it; k1 stays published.
	idp.Publish(k1, k2)
	poll.Eventually(t, 10*time.Second, "a token of the new key accepted", func() (bool, string) {
		_, err := v.VerifyToken(tok2)
		return err == nil, errString(err)
	})
	if _, err := v.VerifyToken(tok1); err != nil {
		t.Fatalf("during the overlap the old key must still verify: %v", err)
	}

	// The provider withdraws k1.
	idp.Publish(k2)
	poll.Eventually(t, 10*time.Second, "a token of the withdrawn key refused", func() (bool, string) {
		_, err := v.VerifyToken(tok1)
		return err != nil, "still accepted"
	})
	if _, err := v.VerifyToken(tok2); err != nil {
		t.Fatalf("after the rotation the new key: %v", err)
	}
}

// TestJWKSNewKeyWithoutWaitingForRefresh: a token naming a kid the cache
// does not hold makes one fetch at once, so a provider's new key works
// before the next periodic refresh.
func TestJWKSNewKeyWithoutWaitingForRefresh(t *testing.T) {
	k1, k2 := authtest.NewKey(t, "k1"), authtest.NewKey(t, "k2")
	idp := authtest.NewJWKS(t, k1)
	v := newJWKSVerifier(t, idp.URL, time.Hour)
	idp.Publish(k1, k2)
	if _, err := v.VerifyToken(k2.Sign(t, claims("u"))); err != nil {
		t.Fatalf("a new kid must be fetched at once: %v", err)
	}
}

// TestJWKSUnknownKIDIsRateLimited: tokens naming kids the set does not
// hold cannot make the gateway fetch the set once per token.
func TestJWKSUnknownKIDIsRateLimited(t *testing.T) {
	k := authtest.NewKey(t, "k")
	idp := authtest.NewJWKS(t, k)
	v := newJWKSVerifier(t, idp.URL, time.Hour)
	before := idp.Fetches()
	for i := range 20 {
		other := authtest.Key{KID: "unknown-" + string(rune('a'+i)), Private: k.Private}
		if _, err := v.VerifyToken(other.Sign(t, claims("u"))); err == nil {
			t.Fatal("a token with an unknown kid was accepted")
		}
	}
	if n := idp.Fetches() - before; n > 1 {
		t.Fatalf("20 tokens with unknown kids made %d fetches; want at most 1", n)
	}
}

// TestJWKSUnreachableAtStart: the gateway starts while the provider is
// down, and accepts tokens once a refresh reaches it.
func TestJWKSUnreachableAtStart(t *testing.T) {
	k := authtest.NewKey(t, "k")
	idp := authtest.NewJWKS(t, k)
	var up atomic.Bool
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		idp.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(gate.Close)
	v := newJWKSVerifier(t, gate.URL, 50*time.Millisecond)
	tok := k.Sign(t, claims("u"))
	if _, err := v.VerifyToken(tok); err == nil {
		t.Fatal("a token accepted before any key set was fetched")
	}
	up.Store(true)
	poll.Eventually(t, 10*time.Second, "the token accepted once the provider answers", func() (bool, string) {
		_, err := v.VerifyToken(tok)
		return err == nil, errString(err)
	})
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
