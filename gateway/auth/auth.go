// Package auth checks the optional JWT of a WebSocket upgrade: HS256 with
// a shared secret, or RS256/ES256 with a PEM public key. The token's "sub"
// is the user id.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presencekit/presence-operator/gateway/protocol"
)

// Verifier checks tokens with one key.
type Verifier struct {
	key    any
	method string
	now    func() time.Time
}

// NewHS256 returns a verifier of HS256 tokens signed with secret.
func NewHS256(secret string) (*Verifier, error) {
	if secret == "" {
		return nil, errors.New("AUTH_JWT_SECRET is empty")
	}
	return &Verifier{key: []byte(secret), method: jwt.SigningMethodHS256.Alg(), now: time.Now}, nil
}

// NewFromPublicKeyFile returns a verifier of RS256 (RSA key) or ES256
// (ECDSA P-256 key) tokens, from a PEM public key file.
func NewFromPublicKeyFile(path string) (*Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("AUTH_JWT_PUBLIC_KEY_FILE: %w", err)
	}
	if k, err := jwt.ParseRSAPublicKeyFromPEM(b); err == nil {
		return &Verifier{key: k, method: jwt.SigningMethodRS256.Alg(), now: time.Now}, nil
	}
	k, err := jwt.ParseECPublicKeyFromPEM(b)
	if err != nil {
		return nil, fmt.Errorf("AUTH_JWT_PUBLIC_KEY_FILE %q: neither an RSA nor an ECDSA PEM public key", path)
	}
	if k.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("AUTH_JWT_PUBLIC_KEY_FILE %q: ECDSA curve %s; ES256 needs P-256", path, k.Curve.Params().Name)
	}
	return &Verifier{key: k, method: jwt.SigningMethodES256.Alg(), now: time.Now}, nil
}

// Method is the accepted signing algorithm (HS256, RS256 or ES256).
func (v *Verifier) Method() string { return v.method }

// ErrNoToken means the request carries no token.
var ErrNoToken = errors.New(`no token: pass it as the "token" query parameter or an "Authorization: Bearer" header`)

// TokenFrom returns the request's token: the "token" query parameter, or
// the bearer token of the Authorization header.
func TokenFrom(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Verify checks the request's token (signature, algorithm, exp and nbf
// when present) and returns its subject, a valid user id.
func (v *Verifier) Verify(r *http.Request) (string, error) {
	raw := TokenFrom(r)
	if raw == "" {
		return "", ErrNoToken
	}
	tok, err := jwt.ParseWithClaims(raw, &jwt.RegisteredClaims{}, func(t *jwt.Token) (any, error) {
		return v.key, nil
	}, jwt.WithValidMethods([]string{v.method}), jwt.WithTimeFunc(v.now), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return "", fmt.Errorf("invalid token: %w", err)
	}
	sub, err := tok.Claims.GetSubject()
	if err != nil || sub == "" {
		return "", errors.New(`invalid token: no "sub" claim (the user id)`)
	}
	if err := protocol.ValidateUserID(sub); err != nil {
		return "", fmt.Errorf(`invalid token: "sub": %w`, err)
	}
	return sub, nil
}
