// Package authtest serves what tests of JWT authentication need: an
// identity provider's JSON Web Key Set on a local HTTP server, whose keys
// a test rotates, and tokens signed by its keys.
package authtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Key is an ES256 signing key with its key id.
type Key struct {
	KID     string
	Private *ecdsa.PrivateKey
}

// NewKey returns a fresh P-256 key named kid.
func NewKey(t testing.TB, kid string) Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Key{KID: kid, Private: k}
}

// Sign returns a token with claims, signed by k, naming k.KID in its
// header (no kid when KID is empty).
func (k Key) Sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	if k.KID != "" {
		tok.Header["kid"] = k.KID
	}
	s, err := tok.SignedString(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// JWKS is a local identity provider's key set endpoint.
type JWKS struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []Key
	fetches atomic.Int64
}

// NewJWKS serves the keys at the returned server's URL until the test
// ends.
func NewJWKS(t testing.TB, keys ...Key) *JWKS {
	j := &JWKS{keys: keys}
	j.Server = httptest.NewServer(http.HandlerFunc(j.serve))
	t.Cleanup(j.Close)
	return j
}

// Publish replaces the published keys (a rotation step).
func (j *JWKS) Publish(keys ...Key) {
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
}

// Fetches is how many times the set was fetched.
func (j *JWKS) Fetches() int64 { return j.fetches.Load() }

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func (j *JWKS) serve(w http.ResponseWriter, _ *http.Request) {
	j.fetches.Add(1)
	j.mu.Lock()
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range j.keys {
		// The uncompressed point: 0x04, then X and Y, 32 bytes each.
		p, err := k.Private.PublicKey.Bytes()
		if err != nil || len(p) != 65 {
			panic("authtest: not a P-256 key")
		}
		b64 := base64.RawURLEncoding.EncodeToString
		set.Keys = append(set.Keys, jwk{Kty: "EC", Crv: "P-256", Kid: k.KID, Alg: "ES256", Use: "sig", X: b64(p[1:33]), Y: b64(p[33:])})
	}
	j.mu.Unlock()
	sort.Slice(set.Keys, func(a, b int) bool { return set.Keys[a].Kid < set.Keys[b].Kid })
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(set)
}
