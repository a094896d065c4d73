// Package server is the gateway's transport: the WebSocket upgrade at
// /?userId=, the connection loop, the presence HTTP API, health probes and
// the graceful drain.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presencekit/presence-operator/gateway/auth"
	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/gateway/demo"
	"github.com/presencekit/presence-operator/gateway/hub"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/protocol"
)

// Options are what a Server is made of.
type Options struct {
	Config   config.Config
	Store    presence.Store
	Hub      *hub.Hub
	Metrics  *Metrics
	Verifier *auth.Verifier // nil: no auth
	Logger   *slog.Logger   // slog.Default when nil
	// Now is the clock of the per-connection rate limits (time.Now when
	// nil); tests move it.
	Now func() time.Time
}

// Server serves the gateway's public port.
type Server struct {
	cfg      config.Config
	store    presence.Store
	hub      *hub.Hub
	metrics  *Metrics
	verifier *auth.Verifier
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux

	draining   atomic.Bool
	storeReady atomic.Bool // last result of the background readiness check
	open       atomic.Int64
	full       atomic.Bool // at MAX_CONNECTIONS, until readyMargin below it (readyz)

	mu         sync.Mutex
	clients    map[*client]struct{}
	localUsers map[string]int // user id -> its connections here (online_users_local)
	gone       chan struct{}  // signalled (non-blocking) whenever a client leaves
}

// New returns a server; Serve runs it.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Hub == nil || o.Metrics == nil {
		return nil, errors.New("server: Store, Hub and Metrics are required")
	}
	s := &Server{
		cfg: o.Config, store: o.Store, hub: o.Hub, metrics: o.Metrics, verifier: o.Verifier,
		log: o.Logger, now: o.Now, clients: make(map[*client]struct{}), localUsers: make(map[string]int), gone: make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.metrics.MaxConnections.Set(float64(s.cfg.MaxConnections))
	s.storeReady.Store(true)
	s.mux = s.routes()
	return s, nil
}

// routes is the public port's mux.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", s.handleRoot)
	mux.HandleFunc("/v1/presence", s.handlePresence)
	mux.HandleFunc("/healthz", s.handleHealthz)
	mux.HandleFunc("/readyz", s.handleReadyz)
	// Extra pages mount here: the live presence page (package gateway/demo).
	mux.Handle("/demo/", demo.Handler())
	return mux
}

// Handler is the public port's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves ln until ctx ends, then drains: /readyz turns 503 and new
// upgrades are refused at once, open connections are closed with 1001
// spread over SHUTDOWN_GRACE, and Serve returns before the grace ends.
// The caller closes the store afterwards.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.sweepIdle(bg) })
	wg.Go(func() { s.sweepTokens(bg) })
	wg.Go(func() { s.checkStore(bg) })
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	select {
	case err := <-errc:
		stopBG()
		wg.Wait()
		return fmt.Errorf("serving %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.drain(s.cfg.ShutdownGrace)
	stopBG()
	wg.Wait()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		_ = hs.Close()
	}
	return nil
}

// checkStore refreshes the readiness flag that upgrades consult, so that
// an upgrade costs no store round trip to learn the store is down.
func (s *Server) checkStore(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := s.store.Ready(c)
			cancel()
			if was := s.storeReady.Swap(err == nil); was != (err == nil) {
				s.log.Warn("presence store readiness changed", "ready", err == nil, "err", err)
			}
		}
	}
}

// sweepIdle is the one ticker that closes idle connections (no timer per
// connection): a client that sent nothing for IDLE_TIMEOUT gets 1001.
func (s *Server) sweepIdle(ctx context.Context) {
	every := min(max(s.cfg.IdleTimeout/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			limit := now.Add(-s.cfg.IdleTimeout).UnixNano()
			s.mu.Lock()
			var idle []*client
			for c := range s.clients {
				if c.lastRead.Load() < limit {
					idle = append(idle, c)
				}
			}
			s.mu.Unlock()
			for _, c := range idle {
				c.closeAsync(statusGoingAway, "idle timeout", "idle_timeout")
			}
		}
	}
}

// handleHealthz answers 200 while the process runs.
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz answers 200 only when the store answers, the process is
// not draining and the replica is not full (see atCapacity).
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeError(w, http.StatusServiceUnavailable, "draining", "the gateway is shutting down")
		return
	}
	if s.atCapacity() {
		writeError(w, http.StatusServiceUnavailable, "too_many_connections",
			fmt.Sprintf("this replica holds %d connections, its limit is %d", s.open.Load(), s.cfg.MaxConnections))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := s.store.Ready(ctx)
	// Upgrades follow what /readyz last said: once it answered 503, they
	// are refused with 503 too, without waiting for the background check
	// (the store records a connection only after the handshake, when a
	// 503 can no longer be sent).
	if err == nil || r.Context().Err() == nil { // not a prober that went away
		s.storeReady.Store(err == nil)
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "presence store: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// handlePresence is GET /v1/presence?userId=a&userId=b, for backends.
func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	var watch *auth.WatchList
	if s.verifier != nil {
		claims, err := s.verifier.Verify(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
			return
		}
		watch = claims.Watch
	}
	raw := r.URL.Query()["userId"]
	if len(raw) == 0 {
		writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "name at least one user: ?userId=a&userId=b")
		return
	}
	if len(raw) > protocol.MaxIDsPerRequest {
		writeError(w, http.StatusBadRequest, protocol.CodeTooManyIDs,
			fmt.Sprintf("%d user ids; at most %d per request", len(raw), protocol.MaxIDsPerRequest))
		return
	}
	ids := make([]string, 0, len(raw))
	seen := make(map[string]bool, len(raw))
	for _, id := range raw {
		if err := protocol.ValidateUserID(id); err != nil {
			writeError(w, http.StatusBadRequest, protocol.CodeBadRequest, "userId: "+err.Error())
			return
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if bad := watch.Forbidden(ids); len(bad) > 0 {
		writeJSON(w, http.StatusForbidden, apiError{Error: protocol.CodeForbidden, Message: forbiddenMessage(bad), UserIDs: bad})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	users, err := s.store.Get(ctx, ids)
	if err != nil {
		s.log.Warn("presence query failed", "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "presence store: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Users []protocol.User `json:"users"`
	}{protocol.WireUsers(users)})
}

// apiError is the JSON body of every refusal.
type apiError struct {
	Error   string   `json:"error"`
	Message string   `json:"message"`
	UserIDs []string `json:"userIds,omitempty"` // with "forbidden": the users the caller may not read
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, apiError{Error: code, Message: message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// register adds a client to the set the idle sweep and the drain see.
func (s *Server) register(c *client) {
	s.mu.Lock()
	s.clients[c] = struct{}{}
	s.localUsers[c.pc.UserID]++
	s.metrics.OnlineUsersLocal.Set(float64(len(s.localUsers)))
	s.mu.Unlock()
}

// unregister removes a client and wakes a drain waiting for the last one.
func (s *Server) unregister(c *client) {
	s.mu.Lock()
	if _, ok := s.clients[c]; ok {
		delete(s.clients, c)
		if s.localUsers[c.pc.UserID]--; s.localUsers[c.pc.UserID] <= 0 {
			delete(s.localUsers, c.pc.UserID)
		}
	}
	s.metrics.OnlineUsersLocal.Set(float64(len(s.localUsers)))
	s.mu.Unlock()
	select {
	case s.gone <- struct{}{}:
	default:
	}
}

// readyMargin is how far below MAX_CONNECTIONS a full replica must fall
// before it reports ready again: 5% of the limit, at least one
// connection. Without it, a replica at its limit would flap between ready
// and not ready with every connection that closes and opens.
func (s *Server) readyMargin() int64 { return max(1, int64(s.cfg.MaxConnections)/20) }

// noteConnections updates the full flag after the connection count
// changed (or is read): full at MAX_CONNECTIONS, not full again only at
// readyMargin below it.
func (s *Server) noteConnections() {
	limit := int64(s.cfg.MaxConnections)
	if limit <= 0 {
		return
	}
	switch n := s.open.Load(); {
	case n >= limit:
		s.full.Store(true)
	case n <= limit-s.readyMargin():
		s.full.Store(false)
	}
}

// atCapacity reports whether /readyz says the replica is full.
func (s *Server) atCapacity() bool {
	s.noteConnections()
	return s.full.Load()
}

// Connections returns how many WebSocket connections are open.
func (s *Server) Connections() int { return int(s.open.Load()) }
