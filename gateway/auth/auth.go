// Package auth checks the optional JWT of a WebSocket upgrade, of a
// "refresh" frame and of the presence HTTP API. The token's "sub" is the
// user id. Keys come from one source: an HS256 secret (given, or read from
// a file), a PEM public key file (RS256/ES256), or an identity provider's
// JSON Web Key Set (JWKS) URL. Files are re-read when they change and the
// JWKS is refreshed, so a key rotates without restarting the gateway.
package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presencekit/presence-operator/gateway/userid"
)

// DefaultLeeway is the clock skew allowed on exp, nbf and iat when
// Options.Leeway is zero.
const DefaultLeeway = 5 * time.Second

// NoLeeway, as Options.Leeway, allows no clock skew at all.
const NoLeeway time.Duration = -1

// Options are the claim checks every key source shares.
type Options struct {
	// Audience, when set, must be one of the token's "aud" values.
	Audience string
	// Issuer, when set, must be the token's "iss".
	Issuer string
	// AllowNoExp accepts tokens without "exp" (they never expire). By
	// default "exp" is required.
	AllowNoExp bool
	// RequireWatch refuses tokens without a "watch" claim
	// (AUTH_REQUIRE_WATCH_CLAIM); by default such a token may watch
	// everybody.
	RequireWatch bool
	// Leeway is the clock skew allowed on exp, nbf and iat (DefaultLeeway
	// when zero, none when NoLeeway). An open connection is closed at exp
	// plus the leeway.
	Leeway time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// FileCheckInterval is how often a key file is checked for a change,
	// at most (time.Second when zero). The check is a stat made by the
	// first verification after the interval: no goroutine.
	FileCheckInterval time.Duration
}

func (o Options) withDefaults() Options {
	switch {
	case o.Leeway == 0:
		o.Leeway = DefaultLeeway
	case o.Leeway < 0:
		o.Leeway = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FileCheckInterval == 0 {
		o.FileCheckInterval = time.Second
	}
	return o
}

// keySource gives the keys a token may be verified with.
type keySource interface {
	// keyfunc is the jwt.Keyfunc: a key, or a jwt.VerificationKeySet.
	keyfunc(t *jwt.Token) (any, error)
	// methods are the signing algorithms the keys can verify.
	methods() []string
}

// Verifier checks tokens against one key source and the claim rules of
// its Options. It is safe for concurrent use.
type Verifier struct {
	keys   keySource
	opts   Options
	parser *jwt.Parser
}

func newVerifier(keys keySource, o Options) *Verifier {
	o = o.withDefaults()
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(keys.methods()), jwt.WithTimeFunc(o.Now), jwt.WithLeeway(o.Leeway),
		jwt.WithIssuedAt(), // an iat in the future (beyond the leeway) is refused
	}
	if !o.AllowNoExp {
		popts = append(popts, jwt.WithExpirationRequired())
	}
	if o.Audience != "" {
		popts = append(popts, jwt.WithAudience(o.Audience))
	}
	if o.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.Issuer))
	}
	return &Verifier{keys: keys, opts: o, parser: jwt.NewParser(popts...)}
}

// Methods are the accepted signing algorithms (HS256, or RS256/ES256...).
func (v *Verifier) Methods() []string { return v.keys.methods() }

// Claims is what a valid token says about its connection.
type Claims struct {
	// Subject is the token's "sub": a valid user id.
	Subject string
	// ValidUntil is the token's exp plus the leeway: when an open
	// connection authenticated by it is closed. Zero when the token has no
	// exp (only with Options.AllowNoExp).
	ValidUntil time.Time
	// Watch is the token's "watch" claim: whom its connection may
	// subscribe to and query. Nil (no claim) allows everybody.
	Watch *WatchList
}

// tokenClaims are the claims VerifyToken reads: the registered ones and
// the gateway's own "watch".
type tokenClaims struct {
	jwt.RegisteredClaims
	Watch json.RawMessage `json:"watch,omitempty"`
}

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

// Verify checks the request's token; see VerifyToken.
func (v *Verifier) Verify(r *http.Request) (Claims, error) {
	raw := TokenFrom(r)
	if raw == "" {
		return Claims{}, ErrNoToken
	}
	return v.VerifyToken(raw)
}

// VerifyToken checks a token: its signature and algorithm against the
// key source, exp (required unless AllowNoExp), nbf, iat (not in the
// future), aud and iss when configured, and a "sub" that is a valid user
// id, and a "watch" claim of the right shape (required with
// Options.RequireWatch).
func (v *Verifier) VerifyToken(raw string) (Claims, error) {
	var tc tokenClaims
	if _, err := v.parser.ParseWithClaims(raw, &tc, v.keys.keyfunc); err != nil {
		return Claims{}, fmt.Errorf("invalid token: %w", err)
	}
	rc := &tc.RegisteredClaims
	if rc.Subject == "" {
		return Claims{}, errors.New(`invalid token: no "sub" claim (the user id)`)
	}
	if err := userid.Validate(rc.Subject); err != nil {
		return Claims{}, fmt.Errorf(`invalid token: "sub": %w`, err)
	}
	c := Claims{Subject: rc.Subject}
	switch {
	case tc.Watch != nil:
		w, err := parseWatch(tc.Watch)
		if err != nil {
			return Claims{}, fmt.Errorf("invalid token: %w", err)
		}
		c.Watch = w
	case v.opts.RequireWatch:
		return Claims{}, errNoWatchClaim
	}
	if rc.ExpiresAt != nil {
		c.ValidUntil = rc.ExpiresAt.Add(v.opts.Leeway)
	}
	return c, nil
}
