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

func writePEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hs, err := NewHS256("topsecret")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewFromPublicKeyFile(writePEM(t, &rsaKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	es, err := NewFromPublicKeyFile(writePEM(t, &ecKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if rs.Method() != "RS256" || es.Method() != "ES256" || hs.Method() != "HS256" {
		t.Fatalf("methods: %s %s %s", hs.Method(), rs.Method(), es.Method())
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
		{"hs256 bearer", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "u2"}), true, "u2", true},
		{"rs256", rs, sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": "r@x"}), false, "r@x", true},
		{"es256", es, sign(t, jwt.SigningMethodES256, ecKey, jwt.MapClaims{"sub": "e.1", "nbf": past}), true, "e.1", true},
		{"no token", hs, "", false, "no token", false},
		{"wrong secret", hs, sign(t, jwt.SigningMethodHS256, []byte("nope"), jwt.MapClaims{"sub": "u1"}), false, "signature", false},
		{"expired", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "u1", "exp": past}), false, "expired", false},
		{"not yet valid", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "u1", "nbf": future}), false, "not valid yet", false},
		{"no sub", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"exp": future}), false, `no "sub"`, false},
		{"bad sub", hs, sign(t, jwt.SigningMethodHS256, []byte("topsecret"), jwt.MapClaims{"sub": "a b"}), false, `"sub"`, false},
		{"alg none", hs, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "u1"}), false, "signing method", false},
		{"hs256 against rsa key", rs, sign(t, jwt.SigningMethodHS256, []byte("x"), jwt.MapClaims{"sub": "u1"}), false, "signing method", false},
		{"es256 other key", es, sign(t, jwt.SigningMethodES256, otherEC, jwt.MapClaims{"sub": "u1"}), false, "invalid token", false},
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
			sub, err := tc.v.Verify(r)
			if tc.ok {
				if err != nil || sub != tc.want {
					t.Fatalf("Verify = %q, %v; want %q", sub, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %q, %v; want an error containing %q", sub, err, tc.want)
			}
		})
	}
}

func TestBadKeyFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(p, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFromPublicKeyFile(p); err == nil || !strings.Contains(err.Error(), "neither an RSA nor an ECDSA") {
		t.Fatalf("junk key: %v", err)
	}
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewFromPublicKeyFile(writePEM(t, &k384.PublicKey)); err == nil || !strings.Contains(err.Error(), "P-256") {
		t.Fatalf("P-384 key: %v", err)
	}
	if _, err := NewFromPublicKeyFile("/nonexistent"); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := NewHS256(""); err == nil {
		t.Fatal("empty secret accepted")
	}
}
