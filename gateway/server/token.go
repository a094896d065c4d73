package server

import (
	"context"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/gateway/excerpt"
	"github.com/presencekit/presence-operator/gateway/protocol"
)

// The server side of token expiry. A connection authenticated by a JWT
// lives until its token's exp plus the leeway (auth.Claims.ValidUntil);
// a "refresh" frame with a newer token for the same user moves that
// deadline. One ticker per replica closes the connections past their
// deadline with 4001: no timer per connection.

// statusTokenExpired closes a connection whose token expired without a
// refresh. It is in the range RFC 6455 leaves to applications.
const statusTokenExpired websocket.StatusCode = 4001

// tokenSweepEvery is how often expired tokens are looked for: a
// connection is closed at most this late.
const tokenSweepEvery = 250 * time.Millisecond

// setTokenDeadline records when the connection's token stops being valid;
// the zero time means never (a token without exp, or no auth).
func (c *client) setTokenDeadline(t time.Time) {
	if t.IsZero() {
		c.tokenUntil.Store(0)
		return
	}
	c.tokenUntil.Store(t.UnixNano())
}

// refresh answers a refresh frame: a valid token for the connection's
// user replaces the old one's deadline. A token that does not verify gets
// invalid_token and one for another user gets forbidden; either way the
// connection keeps its old token and stays open until that one expires.
func (c *client) refresh(req protocol.Request) *protocol.Error {
	if c.s.verifier == nil {
		return &protocol.Error{ID: req.ID, Code: protocol.CodeBadRequest,
			Message: "this gateway does not use tokens (no AUTH_JWT_* setting); there is nothing to refresh"}
	}
	claims, err := c.s.verifier.VerifyToken(req.Token)
	if err != nil {
		return &protocol.Error{ID: req.ID, Code: protocol.CodeInvalidToken, Message: excerpt.Of(err.Error())}
	}
	if claims.Subject != c.pc.UserID {
		return &protocol.Error{ID: req.ID, Code: protocol.CodeForbidden,
			Message: "the token is for another user; a connection keeps its user"}
	}
	c.setTokenDeadline(claims.ValidUntil)
	c.watch = claims.Watch // later requests follow the new token's claim
	c.send(kindOK, protocol.EncodeOK(req.ID))
	return nil
}

// sweepTokens is the one ticker that closes connections whose token
// expired, with 4001 "token expired". It runs only when auth is on.
func (s *Server) sweepTokens(ctx context.Context) {
	if s.verifier == nil {
		return
	}
	t := time.NewTicker(tokenSweepEvery)
	defer t.Stop()
	var expired []*client
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := now.UnixNano()
			expired = expired[:0]
			s.mu.Lock()
			for c := range s.clients {
				if until := c.tokenUntil.Load(); until != 0 && until <= n {
					expired = append(expired, c)
				}
			}
			s.mu.Unlock()
			for i, c := range expired {
				c.closeAsync(statusTokenExpired, "token expired", "token_expired")
				expired[i] = nil
			}
		}
	}
}
