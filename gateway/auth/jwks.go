package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// JWKS refresh defaults.
const (
	// DefaultJWKSRefresh is how often the key set is fetched again, so that
	// a key the identity provider withdrew stops being accepted.
	DefaultJWKSRefresh = 5 * time.Minute
	// jwksUnknownKIDEvery bounds the extra fetches that a token with an
	// unknown "kid" triggers (a key the provider just added): at most one
	// per interval, so that forged kids cannot make the gateway hammer the
	// provider.
	jwksUnknownKIDEvery = 30 * time.Second
	// jwksFetchTimeout bounds one fetch, and what a verification waits for
	// an unknown kid's fetch.
	jwksFetchTimeout = 5 * time.Second
)

// jwksMethods are the asymmetric algorithms a JWKS key may sign with. The
// library checks a key's own "alg" against the token's, and a key's type
// against the algorithm; HMAC is never accepted from a key set.
var jwksMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// JWKSOptions tune the key set's cache.
type JWKSOptions struct {
	// Refresh is how often the set is fetched again (DefaultJWKSRefresh
	// when zero).
	Refresh time.Duration
	// Client fetches the set (http.DefaultClient when nil).
	Client *http.Client
}

// jwksKeys is a JWKS URL's key set, cached and refreshed by keyfunc: every
// Refresh, and at once (rate-limited) when a token names a kid it does not
// hold. Each refresh replaces the whole set, so a key stays valid exactly
// as long as the provider publishes it; rotation with overlap (old and new
// key both published) works without a restart.
type jwksKeys struct{ kf keyfunc.Keyfunc }

// NewFromJWKS returns a verifier of tokens signed by a key of the JSON Web
// Key Set at url. The set is fetched now (a failure is logged, not fatal:
// the provider may come up after the gateway) and refreshed until ctx
// ends.
func NewFromJWKS(ctx context.Context, url string, o Options, jo JWKSOptions) (*Verifier, error) {
	if jo.Refresh <= 0 {
		jo.Refresh = DefaultJWKSRefresh
	}
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		Client:            jo.Client,
		HTTPTimeout:       jwksFetchTimeout,
		RefreshInterval:   jo.Refresh,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(jwksUnknownKIDEvery), 1),
		// A verification waits at most this for the limiter and the fetch:
		// an unknown kid past the limit fails at once (the wait would be
		// longer than the bound).
		RateLimitWaitMax: jwksFetchTimeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				slog.Warn("fetching the JWKS failed; keeping the keys last fetched", "url", u, "err", err)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("AUTH_JWT_JWKS_URL %q: %w", url, err)
	}
	return newVerifier(&jwksKeys{kf: kf}, o), nil
}

func (j *jwksKeys) keyfunc(t *jwt.Token) (any, error) { return j.kf.Keyfunc(t) }
func (j *jwksKeys) methods() []string                 { return jwksMethods }
