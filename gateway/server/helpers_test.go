package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	presenceclient "github.com/presencekit/presence-operator/client"
	"github.com/presencekit/presence-operator/gateway/auth"
	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/gateway/hub"
	"github.com/presencekit/presence-operator/gateway/metrics"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/memstore"
	"github.com/presencekit/presence-operator/gateway/server"
)

// gateway is a server running on a free loopback port for one test.
type gateway struct {
	t       *testing.T
	url     string // http://127.0.0.1:port
	ws      string // ws://127.0.0.1:port
	metrics *server.Metrics
	stored  *presence.Metrics // the store's series
	reg     *prometheus.Registry
	store   presence.Store
	srv     *server.Server
	stop    context.CancelFunc // starts the drain
	done    chan struct{}      // closed when Serve returned
	served  error              // Serve's result, once done is closed
}

type setup struct {
	cfg      func(*config.Config)
	verifier *auth.Verifier
	listener func(net.Listener) net.Listener
	clock    *fakeClock // the rate limits' clock; the real one when nil
	// wrapStore, when set, stands between the server and the in-memory
	// store (a store that stalls or fails on purpose).
	wrapStore func(presence.Store) presence.Store
}

// fakeClock is a clock that moves only when the test says so.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func defaultConfig() config.Config {
	c, err := config.Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		panic(err)
	}
	c.ShutdownGrace = 2 * time.Second
	return c
}

func start(t *testing.T, su setup) *gateway {
	t.Helper()
	cfg := defaultConfig()
	if su.cfg != nil {
		su.cfg(&cfg)
	}
	reg := metrics.NewRegistry() // as cmd/presence-gateway builds it
	m, pm := server.NewMetrics(reg), presence.NewMetrics(reg)
	var h *hub.Hub
	store, err := memstore.New(presence.Options{
		TTL: cfg.PresenceTTL, Heartbeat: cfg.HeartbeatInterval, OfflineGrace: cfg.OfflineGrace,
		OnEvent: func(u presence.User) { h.Publish(u) }, Metrics: pm,
	})
	if err != nil {
		t.Fatal(err)
	}
	var served presence.Store = store
	if su.wrapStore != nil {
		served = su.wrapStore(store)
	}
	h = hub.New(served, hub.NewMetrics(reg))
	opts := server.Options{Config: cfg, Store: served, Hub: h, Metrics: m, Verifier: su.verifier}
	if su.clock != nil {
		opts.Now = su.clock.now
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if su.listener != nil {
		ln = su.listener(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runCtx, stopRun := context.WithCancel(context.Background())
	go func() { _ = store.Run(runCtx) }()
	g := &gateway{t: t, url: "http://" + ln.Addr().String(), ws: "ws://" + ln.Addr().String(),
		metrics: m, stored: pm, reg: reg, store: store, srv: srv, stop: cancel, done: make(chan struct{})}
	go func() {
		g.served = srv.Serve(ctx, ln)
		close(g.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-g.done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop within 10s")
		}
		stopRun()
		_ = store.Close(context.Background())
	})
	return g
}

// connect dials the Go client (package client) as userID, for a test that
// needs only a well-behaved client; tests that look at particular frames,
// send bad ones or do not read use dial. One attempt; the client is closed
// when the test ends. With events false it discards its events.
func (g *gateway) connect(userID string, events bool) *presenceclient.Client {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := presenceclient.Dial(ctx, presenceclient.Options{URL: g.ws, UserID: userID, DiscardEvents: !events, DialAttempts: 1})
	if err != nil {
		g.t.Fatalf("connect %s: %v", userID, err)
	}
	g.t.Cleanup(func() { _ = c.Close() })
	return c
}

// connectionID is the id of c's open connection.
func connectionID(t *testing.T, c *presenceclient.Client) string {
	t.Helper()
	w, ok := c.Welcome()
	if !ok {
		t.Fatal("the client has no open connection")
	}
	return w.ConnectionID
}

// stillConnected checks that c answers a ping on the connection whose id
// is connID: the client would hide a drop by reconnecting.
func stillConnected(t *testing.T, c *presenceclient.Client, connID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if id := connectionID(t, c); id != connID {
		t.Fatalf("connection %s, want %s: the client was dropped and reconnected", id, connID)
	}
}

// nextUser returns the next newer state (snapshot or change) that c
// delivers, within 5s; states no newer than the one held are skipped.
func nextUser(t *testing.T, c *presenceclient.Client) (presenceclient.User, bool) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatal("the client closed")
			}
			switch ev := ev.(type) {
			case *presenceclient.PresenceEvent:
				return ev.User, ev.Snapshot
			}
		case <-timeout:
			t.Fatal("no presence event within 5s")
		}
	}
}

// client is a raw test WebSocket client: what the tests send and receive
// frame by frame.
type client struct {
	t *testing.T
	c *websocket.Conn
}

func (g *gateway) dial(userID string) *client {
	g.t.Helper()
	c, err := g.dialRaw("/?userId="+userID, nil)
	if err != nil {
		g.t.Fatalf("dial %s: %v", userID, err)
	}
	return c
}

// dialWelcome dials and consumes the welcome frame.
func (g *gateway) dialWelcome(userID string) *client {
	g.t.Helper()
	c := g.dial(userID)
	if w := c.read(); w["type"] != "welcome" {
		g.t.Fatalf("first frame %v, want welcome", w)
	}
	return c
}

func (g *gateway) dialRaw(path string, opts *websocket.DialOptions) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, g.ws+path, opts)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: g.t, c: c}
	g.t.Cleanup(func() { _ = c.CloseNow() })
	return cl, nil
}

func (c *client) sendText(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendText(string(b))
}

// readRaw reads one frame within 5s.
func (c *client) readRaw() (websocket.MessageType, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.c.Read(ctx)
}

// read reads one JSON frame.
func (c *client) read() map[string]any {
	c.t.Helper()
	_, b, err := c.readRaw()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("frame %q is not JSON: %v", b, err)
	}
	return m
}

// expectType reads one frame and checks its type.
func (c *client) expectType(typ string) map[string]any {
	c.t.Helper()
	m := c.read()
	if m["type"] != typ {
		c.t.Fatalf("got %v, want a %s frame", m, typ)
	}
	return m
}

// expectError reads one frame and checks it is the error code.
func (c *client) expectError(code string) map[string]any {
	c.t.Helper()
	m := c.expectType("error")
	if m["code"] != code || m["message"] == "" {
		c.t.Fatalf("got %v, want error %s with a message", m, code)
	}
	return m
}

// expectClose reads until the connection ends and checks the close code
// (and that the reason contains reason).
func (c *client) expectClose(code websocket.StatusCode, reason string) {
	c.t.Helper()
	for range 10000 {
		_, _, err := c.readRaw()
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !asCloseError(err, &ce) {
			c.t.Fatalf("connection ended with %v, want close %d", err, code)
		}
		if ce.Code != code || !strings.Contains(ce.Reason, reason) {
			c.t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
		}
		return
	}
	c.t.Fatal("no close after 10000 frames")
}

// alive checks the connection still answers.
func (c *client) alive() {
	c.t.Helper()
	c.send(map[string]any{"type": "ping", "id": "alive"})
	m := c.expectType("pong")
	if m["id"] != "alive" {
		c.t.Fatalf("pong %v, want id alive", m)
	}
}

// users returns the users of a presence frame, by id.
func users(t *testing.T, m map[string]any) map[string]map[string]any {
	t.Helper()
	if m["type"] != "presence" {
		t.Fatalf("got %v, want a presence frame", m)
	}
	out := map[string]map[string]any{}
	list, ok := m["users"].([]any)
	if !ok {
		t.Fatalf("presence frame without users: %v", m)
	}
	for _, u := range list {
		um := u.(map[string]any)
		out[um["userId"].(string)] = um
	}
	return out
}

// reply is an HTTP answer with its JSON body decoded.
type reply struct {
	StatusCode int
	Header     http.Header
}

// get does an HTTP GET and decodes the JSON body.
func (g *gateway) get(path string, header http.Header) (reply, map[string]any) {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.url+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		g.t.Fatalf("GET %s: body is not JSON: %v", path, err)
	}
	return reply{resp.StatusCode, resp.Header}, m
}

func (g *gateway) counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

func upgradeHeaders() http.Header {
	return http.Header{
		"Connection":            {"Upgrade"},
		"Upgrade":               {"websocket"},
		"Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key":     {"dGhlIHNhbXBsZSBub25jZQ=="},
	}
}

func idList(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func asCloseError(err error, ce *websocket.CloseError) bool {
	return errors.As(err, ce)
}
