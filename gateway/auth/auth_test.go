package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func pemOf(t *testing.T, pubs ...any) []byte {
	t.Helper()
	var out []byte
	for _, pub := range pubs {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return out
}

func writePEM(t *testing.T, pubs ...any) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pemOf(t, pubs...), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// replaceFile swaps a file's content the way a Secret volume does: a new
// file renamed over the old one.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerify(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec, otherEC := ecKey(t), ecKey(t)
	hs, err := NewHS256("topsecret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewFromPublicKeyFile(writePEM(t, &rsaKey.PublicKey), Options{})
	if err != nil {
		t.Fatal(err)
	}
	es, err := NewFromPublicKeyFile(writePEM(t, &ec.PublicKey), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(hs.Methods(), ","); got != "HS256" {
		t.Fatalf("HS256 verifier methods: %s", got)
	}
	if got := strings.Join(rs.Methods(), ","); got != "RS256,ES256" {
		t.Fatalf("public key verifier methods: %s", got)
	}
	now := time.Now()
	future, past := now.Add(time.Hour).Unix(), now.Add(-time.Hour).Unix()
	tests := []struct {
		name   string
		v      *Verifier
		token  string
		bearer bool
		want   string // sub, or a substring of the error
		ok     bool
	}{
		{"hs256 query", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "u1", "exp": future}), false, "u1", true},
		{"hs256 bearer", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "u2", "exp": future}), true, "u2", true},
		{"rs256", rs, sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": "r@x", "exp": future}), false, "r@x", true},
		{"es256", es, sign(t, jwt.SigningMethodES256, ec, jwt.MapClaims{"sub": "e.1", "nbf": past, "exp": future}), true, "e.1", true},
		{"no token", hs, "", false, "no token", false},
		{"no exp", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "u1"}), false, "exp claim is required", false},
		{"wrong secret", hs, sign(t, jwt.SigningMethodHS256, []byte("nope"), jwt.MapClaims{"sub": "u1", "exp": future}), false, "signature", false},
		{"expired", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "u1", "exp": past}), false, "expired", false},
		{"not yet valid", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "u1", "nbf": future, "exp": future}), false, "not valid yet", false},
		{"issued in the future", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "u1", "iat": future, "exp": future}), false, "used before issued", false},
		{"no sub", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"exp": future}), false, `no "sub"`, false},
		{"bad sub", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "a b", "exp": future}), false, `"sub"`, false},
		{"alg none", hs, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "u1", "exp": future}), false, "signing method", false},
		{"hs256 against rsa key", rs, sign(t, jwt.SigningMethodHS256, []byte("x"), jwt.MapClaims{"sub": "u1", "exp": future}), false, "signing method", false},
		{"es256 other key", es, sign(t, jwt.SigningMethodES256, otherEC, jwt.MapClaims{"sub": "u1", "exp": future}), false, "invalid token", false},
		{"garbage", hs, "a.b.c", false, "invalid token", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/?userId=x", nil)
			if tc.token != "" {
				if tc.bearer {
					r.Header.Set("Authorization", "Bearer "+tc.token)
				} else {
					r = httptest.NewRequest(http.MethodGet, "/?userId=x&token="+tc.token, nil)
				}
			}
			c, err := tc.v.Verify(r)
			if tc.ok {
				if err != nil || c.Subject != tc.want {
					t.Fatalf("Verify = %+v, %v; want %q", c, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %+v, %v; want an error containing %q", c, err, tc.want)
			}
		})
	}
}

// TestClaimRules covers the token lifecycle checks: audience, issuer,
// required exp, leeway, and the deadline of an open connection.
func TestClaimRules(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	secret := []byte("k")
	tok := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, c) }
	exp := now.Add(time.Minute).Unix()
	strict, err := NewHS256("k", Options{Audience: "presence", Issuer: "https://idp.example", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	lax, err := NewHS256("k", Options{AllowNoExp: true, Leeway: 30 * time.Second, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	none, err := NewHS256("k", Options{Leeway: NoLeeway, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		v    *Verifier
		c    jwt.MapClaims
		want string // "" = valid
	}{
		{"no leeway", none, jwt.MapClaims{"sub": "u", "exp": now.Add(-time.Second).Unix()}, "expired"},
		{"aud and iss match", strict, jwt.MapClaims{"sub": "u", "exp": exp, "aud": "presence", "iss": "https://idp.example"}, ""},
		{"aud among several", strict, jwt.MapClaims{"sub": "u", "exp": exp, "aud": []string{"other", "presence"}, "iss": "https://idp.example"}, ""},
		{"wrong aud", strict, jwt.MapClaims{"sub": "u", "exp": exp, "aud": "other", "iss": "https://idp.example"}, "aud"},
		{"no aud", strict, jwt.MapClaims{"sub": "u", "exp": exp, "iss": "https://idp.example"}, "aud"},
		{"wrong iss", strict, jwt.MapClaims{"sub": "u", "exp": exp, "aud": "presence", "iss": "https://evil.example"}, "iss"},
		{"no iss", strict, jwt.MapClaims{"sub": "u", "exp": exp, "aud": "presence"}, "iss"},
		{"aud and iss unchecked when unset", lax, jwt.MapClaims{"sub": "u", "exp": exp, "aud": "x", "iss": "y"}, ""},
		{"no exp allowed", lax, jwt.MapClaims{"sub": "u"}, ""},
		{"expired within the leeway", lax, jwt.MapClaims{"sub": "u", "exp": now.Add(-20 * time.Second).Unix()}, ""},
		{"expired beyond the leeway", lax, jwt.MapClaims{"sub": "u", "exp": now.Add(-40 * time.Second).Unix()}, "expired"},
		{"iat within the leeway", lax, jwt.MapClaims{"sub": "u", "iat": now.Add(20 * time.Second).Unix()}, ""},
		{"iat beyond the leeway", lax, jwt.MapClaims{"sub": "u", "iat": now.Add(40 * time.Second).Unix()}, "issued"},
		{"default leeway is 5s", strict, jwt.MapClaims{"sub": "u", "exp": now.Add(-6 * time.Second).Unix(), "aud": "presence", "iss": "https://idp.example"}, "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.VerifyToken(tok(tc.c))
			if tc.want == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v; want one mentioning %q", err, tc.want)
			}
		})
	}

	c, err := strict.VerifyToken(tok(jwt.MapClaims{"sub": "u", "exp": exp, "aud": "presence", "iss": "https://idp.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(exp, 0).Add(DefaultLeeway); !c.ValidUntil.Equal(want) {
		t.Fatalf("ValidUntil = %s; want exp + 5s = %s", c.ValidUntil, want)
	}
	c, err = lax.VerifyToken(tok(jwt.MapClaims{"sub": "u"}))
	if err != nil || !c.ValidUntil.IsZero() {
		t.Fatalf("a token without exp: %+v %v; want no deadline", c, err)
	}
}

func TestSecretFileIsReloaded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := now
	v, err := NewFromSecretFile(p, Options{Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	first := sign(t, jwt.SigningMethodHS256, []byte("first"), jwt.MapClaims{"sub": "u", "exp": exp})
	second := sign(t, jwt.SigningMethodHS256, []byte("second"), jwt.MapClaims{"sub": "u", "exp": exp})
	if _, err := v.VerifyToken(first); err != nil {
		t.Fatalf("the file's secret (without its newline): %v", err)
	}
	replaceFile(t, p, []byte("second"))
	if _, err := v.VerifyToken(second); err == nil {
		t.Fatal("the file is checked at most once per FileCheckInterval; it was read again at once")
	}
	clock = clock.Add(time.Second)
	if _, err := v.VerifyToken(second); err != nil {
		t.Fatalf("after the rotation the new secret: %v", err)
	}
	if _, err := v.VerifyToken(first); err == nil {
		t.Fatal("after the rotation the old secret is still accepted")
	}
	// A broken file (empty, missing) keeps the last good secret.
	replaceFile(t, p, nil)
	clock = clock.Add(time.Second)
	if _, err := v.VerifyToken(second); err != nil {
		t.Fatalf("an emptied file must keep the last secret: %v", err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Second)
	if _, err := v.VerifyToken(second); err != nil {
		t.Fatalf("a removed file must keep the last secret: %v", err)
	}
	replaceFile(t, p, []byte("third"))
	clock = clock.Add(time.Second)
	third := sign(t, jwt.SigningMethodHS256, []byte("third"), jwt.MapClaims{"sub": "u", "exp": exp})
	if _, err := v.VerifyToken(third); err != nil {
		t.Fatalf("a file written again after a failure: %v", err)
	}
}

func TestPublicKeyFileIsReloadedWithOverlap(t *testing.T) {
	oldKey, newKey := ecKey(t), ecKey(t)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p := writePEM(t, &oldKey.PublicKey)
	v, err := NewFromPublicKeyFile(p, Options{FileCheckInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	byOld := sign(t, jwt.SigningMethodES256, oldKey, jwt.MapClaims{"sub": "u", "exp": exp})
	byNew := sign(t, jwt.SigningMethodES256, newKey, jwt.MapClaims{"sub": "u", "exp": exp})
	byRSA := sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": "u", "exp": exp})
	check := func(stage, tok string, ok bool) {
		t.Helper()
		if _, err := v.VerifyToken(tok); (err == nil) != ok {
			t.Fatalf("%s: accepted=%v (%v), want %v", stage, err == nil, err, ok)
		}
	}
	check("before: old key", byOld, true)
	check("before: new key", byNew, false)
	// Overlap: the file holds both keys while tokens of both are in use.
	replaceFile(t, p, pemOf(t, &oldKey.PublicKey, &newKey.PublicKey))
	check("overlap: old key", byOld, true)
	check("overlap: new key", byNew, true)
	replaceFile(t, p, pemOf(t, &newKey.PublicKey))
	check("after: old key", byOld, false)
	check("after: new key", byNew, true)
	// A rotation may change the key type.
	replaceFile(t, p, pemOf(t, &rsaKey.PublicKey))
	check("rsa: rs256", byRSA, true)
	check("rsa: es256", byNew, false)
	// A file that is not a key keeps the last keys.
	replaceFile(t, p, []byte("junk"))
	check("junk: rs256", byRSA, true)
}

func TestBadKeyFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(p, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFromPublicKeyFile(p, Options{}); err == nil || !strings.Contains(err.Error(), "neither an RSA nor an ECDSA") {
		t.Fatalf("junk key: %v", err)
	}
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewFromPublicKeyFile(writePEM(t, &k384.PublicKey), Options{}); err == nil || !strings.Contains(err.Error(), "P-256") {
		t.Fatalf("P-384 key: %v", err)
	}
	if _, err := NewFromPublicKeyFile("/nonexistent", Options{}); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := NewFromSecretFile("/nonexistent", Options{}); err == nil {
		t.Fatal("missing secret file accepted")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFromSecretFile(empty, Options{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty secret file: %v", err)
	}
	if _, err := NewHS256("", Options{}); err == nil {
		t.Fatal("empty secret accepted")
	}
}
