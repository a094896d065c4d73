package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/gateway/auth"
	"github.com/presencekit/presence-operator/gateway/excerpt"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/protocol"
)

// retryAfter is the Retry-After of a 503 refusal, in seconds.
const retryAfter = "5"

// handleRoot is GET / : the WebSocket upgrade at /?userId=<id>, or 426 for
// a plain GET. Every refusal is plain HTTP with a JSON error body, before
// any upgrade.
func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		s.refuse(w, http.StatusMethodNotAllowed, "method_not_allowed", "connect with GET and a WebSocket upgrade")
		return
	}
	if !isUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		s.refuse(w, http.StatusUpgradeRequired, "upgrade_required",
			"this is a WebSocket endpoint: connect to ws://<host>/?userId=<id>; the HTTP API is GET /v1/presence?userId=<id>")
		return
	}
	if s.draining.Load() {
		w.Header().Set("Retry-After", retryAfter)
		s.refuse(w, http.StatusServiceUnavailable, "draining", "the gateway is shutting down; reconnect to another replica")
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !s.originAllowed(origin) {
		s.refuse(w, http.StatusForbidden, "origin_not_allowed", fmt.Sprintf("origin %q is not allowed", origin))
		return
	}
	userID, claims, status, code, msg := s.identify(r)
	if status != 0 {
		s.refuse(w, status, code, msg)
		return
	}
	if limit := s.cfg.MaxConnections; limit > 0 {
		if s.open.Add(1) > int64(limit) {
			s.open.Add(-1)
			w.Header().Set("Retry-After", retryAfter)
			s.refuse(w, http.StatusServiceUnavailable, "too_many_connections",
				fmt.Sprintf("this replica holds its limit of %d connections", limit))
			return
		}
	} else {
		s.open.Add(1)
	}
	// The slot is released when the connection ends, or here if the
	// upgrade does not happen.
	upgraded := false
	defer func() {
		if !upgraded {
			s.open.Add(-1)
		}
	}()
	if !s.storeReady.Load() {
		w.Header().Set("Retry-After", retryAfter)
		s.refuse(w, http.StatusServiceUnavailable, "store_unavailable", "the presence store is unreachable")
		return
	}

	var c *client
	var raw net.Conn
	ws, err := websocket.Accept(smallBuffers{w, &raw}, r, &websocket.AcceptOptions{
		// A WebSocket-level ping (what some client libraries send as their
		// keep-alive) is a message like "ping": it counts against
		// MESSAGE_RATE and, within it, as activity for the idle timeout.
		OnPingReceived: func(context.Context, []byte) bool {
			return c != nil && c.onControlPing()
		},
		// The origin was checked above against ALLOWED_ORIGINS (any when
		// empty); the library's same-host default would refuse browsers.
		InsecureSkipVerify: true,
		// No compression: its per-connection state costs far more memory
		// than presence frames save.
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		// Accept already answered the client (a bad handshake); the store
		// was not touched.
		s.metrics.UpgradeRejectionsTotal.WithLabelValues("bad_handshake").Inc()
		return
	}
	// Only now that the handshake succeeded is the connection recorded:
	// a failed upgrade leaves no trace (no online/offline events).
	pc := presence.Conn{UserID: userID, ID: newConnID()}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	_, err = s.store.Connect(ctx, pc)
	cancel()
	if err != nil {
		s.log.Warn("recording a connection failed", "user", userID, "err", err)
		s.metrics.UpgradeRejectionsTotal.WithLabelValues("store_unavailable").Inc()
		go func() {
			cut := time.AfterFunc(closeTimeout, func() { _ = raw.Close() })
			defer cut.Stop()
			_ = ws.Close(statusTryAgainLater, "presence store unavailable")
		}()
		return
	}
	upgraded = true
	ws.SetReadLimit(s.cfg.MaxPayloadBytes)
	c = newClient(s, ws, raw, pc)
	c.setTokenDeadline(claims.ValidUntil)
	c.watch = claims.Watch
	s.metrics.ConnectionsTotal.Inc()
	s.metrics.Connections.Set(float64(s.open.Load()))
	s.noteConnections()
	c.send(kindWelcome, protocol.EncodeWelcome(userID, pc.ID, s.cfg.HeartbeatInterval.Milliseconds(), s.cfg.PresenceTTL.Milliseconds()))
	s.register(c)
	s.log.Debug("connected", "user", userID, "conn", pc.ID, "remote", r.RemoteAddr)
	if s.draining.Load() {
		// The drain started while this upgrade was under way.
		c.closeAsync(statusGoingAway, "server shutting down", "drain")
	}
	// The connection loop runs on a goroutine of its own and the handler
	// returns, so that net/http's per-request state (the request, the
	// response and its buffers, the deep handler stack) is freed instead
	// of living as long as the connection.
	go s.serveClient(c)
}

// serveClient runs a connection until it ends and accounts for its end.
func (s *Server) serveClient(c *client) {
	reason := c.run()
	s.log.Debug("disconnected", "user", c.pc.UserID, "conn", c.pc.ID, "reason", reason)
	s.metrics.DisconnectionsTotal.WithLabelValues(reason).Inc()
	s.open.Add(-1)
	s.metrics.Connections.Set(float64(s.open.Load()))
	s.noteConnections()
	// Last: a drain waiting for the connections to go sees this one done.
	s.unregister(c)
}

// identify returns the connection's user id and its token's claims (their
// zero value without auth: no expiry, no watch restriction), or the
// refusal: 400 for a missing or invalid id, 401 for a missing or bad token
// (a "watch" claim of the wrong shape, or none when
// AUTH_REQUIRE_WATCH_CLAIM), 403 for a userId that disagrees with the
// token's subject.
func (s *Server) identify(r *http.Request) (userID string, claims auth.Claims, status int, code, msg string) {
	q := r.URL.Query()
	userID = q.Get("userId")
	if len(q["userId"]) > 1 {
		return "", auth.Claims{}, http.StatusBadRequest, "invalid_user_id", "give one userId"
	}
	if s.verifier != nil {
		claims, err := s.verifier.Verify(r)
		if err != nil {
			return "", auth.Claims{}, http.StatusUnauthorized, "unauthorized", err.Error()
		}
		if userID != "" && userID != claims.Subject {
			return "", auth.Claims{}, http.StatusForbidden, "user_mismatch", fmt.Sprintf("userId %q is not the token's subject", excerpt.Of(userID))
		}
		return claims.Subject, claims, 0, "", ""
	}
	if userID == "" {
		return "", auth.Claims{}, http.StatusBadRequest, "invalid_user_id", "missing userId: connect to /?userId=<id>"
	}
	if err := protocol.ValidateUserID(userID); err != nil {
		return "", auth.Claims{}, http.StatusBadRequest, "invalid_user_id", err.Error()
	}
	return userID, auth.Claims{}, 0, "", ""
}

// refuse answers an upgrade with an error, counted by reason.
func (s *Server) refuse(w http.ResponseWriter, status int, code, message string) {
	s.metrics.UpgradeRejectionsTotal.WithLabelValues(code).Inc()
	writeError(w, status, code, message)
}

// originAllowed compares an Origin header with ALLOWED_ORIGINS (any when
// empty), ignoring case.
func (s *Server) originAllowed(origin string) bool {
	if len(s.cfg.AllowedOrigins) == 0 {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// newConnID returns an opaque id unique across replicas (96 random bits).
func newConnID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
