package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	presenceclient "github.com/presencekit/presence-operator/client"
	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/internal/poll"
)

func TestPresenceAPI(t *testing.T) {
	g := start(t, setup{})
	g.connect("a", false)
	resp, body := g.get("/v1/presence?userId=a&userId=b&userId=a", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	list := body["users"].([]any)
	if len(list) != 2 {
		t.Fatalf("users %v, want a and b once each", list)
	}
	a, b := list[0].(map[string]any), list[1].(map[string]any)
	if a["userId"] != "a" || a["online"] != true || a["connections"] != 1.0 || b["userId"] != "b" || b["online"] != false {
		t.Fatalf("users %v", list)
	}
	for _, tc := range []struct{ q, code string }{
		{"", "bad_request"},
		{"?userId=bad%20id", "bad_request"},
		{"?userId=" + strings.Join(idList("u", 101), "&userId="), "too_many_ids"},
	} {
		resp, body := g.get("/v1/presence"+tc.q, nil)
		if resp.StatusCode != http.StatusBadRequest || body["error"] != tc.code || body["message"] == "" {
			t.Fatalf("/v1/presence%s: %d %v, want 400 %s", tc.q, resp.StatusCode, body, tc.code)
		}
	}
}

func TestHealthAndReady(t *testing.T) {
	g := start(t, setup{})
	if resp, _ := g.get("/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz %d", resp.StatusCode)
	}
	if resp, _ := g.get("/readyz", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz %d", resp.StatusCode)
	}
}

func TestReadyzFailsWhenStoreDown(t *testing.T) {
	g := start(t, setup{})
	c := g.dialWelcome("u1")
	if err := g.store.Close(t.Context()); err != nil { // the store goes away under the server
		t.Fatal(err)
	}
	resp, body := g.get("/readyz", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || body["error"] != "store_unavailable" {
		t.Fatalf("/readyz with the store down: %d %v", resp.StatusCode, body)
	}
	// Upgrades follow what /readyz said, at once (the store is written
	// only after the handshake, when a 503 can no longer be sent).
	resp, body = g.get("/?userId=u2", upgradeHeaders())
	if resp.StatusCode != http.StatusServiceUnavailable || body["error"] != "store_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upgrade after /readyz said 503: %d %v", resp.StatusCode, body)
	}
	// Open connections stay open; their requests get an error frame.
	c.alive()
	c.send(map[string]any{"type": "query", "userIds": []string{"x"}})
	c.expectError("unavailable")
}

func TestDrain(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.ShutdownGrace = 2 * time.Second }})
	watcher := g.dialWelcome("w")
	watcher.send(map[string]any{"type": "subscribe", "userIds": []string{"x"}})
	watcher.expectType("presence")
	var clients []*client
	for _, id := range idList("d", 10) {
		clients = append(clients, g.dialWelcome(id))
	}
	clients = append(clients, g.dialWelcome("x"))
	began := time.Now()
	g.stop()
	poll.Eventually(t, time.Second, "/readyz 503 at once", func() (bool, string) {
		resp, body := g.get("/readyz", nil)
		return resp.StatusCode == http.StatusServiceUnavailable && body["error"] == "draining", fmt.Sprint(resp.StatusCode, " ", body)
	})
	refusal(t, g, "/?userId=late", nil, http.StatusServiceUnavailable, "draining")
	for _, c := range append(clients, watcher) {
		c.expectClose(websocket.StatusGoingAway, "shutting down")
	}
	select {
	case <-g.done:
		if g.served != nil {
			t.Fatalf("Serve: %v", g.served)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if took := time.Since(began); took >= 2*time.Second {
		t.Fatalf("the drain took %s, not under the 2s grace", took)
	}
	us, err := g.store.Get(t.Context(), idList("d", 10))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		if u.Online {
			t.Fatalf("%s still online after the drain", u.UserID)
		}
	}
	if got := g.counter(g.metrics.DisconnectionsTotal.WithLabelValues("drain")); got != 12 {
		t.Fatalf("disconnections_total{reason=drain} = %v, want 12", got)
	}
}

func TestMetricNames(t *testing.T) {
	g := start(t, setup{})
	c := g.connect("u1", false)
	stillConnected(t, c, connectionID(t, c))
	fams, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range fams {
		have[f.GetName()] = true
	}
	for _, n := range []string{"connections", "connections_total", "messages_received_total", "messages_sent_total",
		"online_users_local", "watched_users", "presence_events_published_total", "presence_transitions_total"} {
		if !have["presence_gateway_"+n] {
			t.Errorf("metric presence_gateway_%s missing", n)
		}
	}
	if !have["go_goroutines"] {
		t.Error("Go runtime collectors missing")
	}
}

// TestReadyzAtMaxConnections: a full replica says it is not ready, so the
// Service stops sending it clients, and says ready again only once it is
// below its limit by the margin (5%, at least one), not at every close.
func TestReadyzAtMaxConnections(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.MaxConnections = 40 }}) // margin: 2
	var cs []*presenceclient.Client
	for _, id := range idList("c", 40) {
		cs = append(cs, g.connect(id, false))
	}
	ready := func() (int, any) {
		resp, body := g.get("/readyz", nil)
		return resp.StatusCode, body["error"]
	}
	if code, e := ready(); code != http.StatusServiceUnavailable || e != "too_many_connections" {
		t.Fatalf("/readyz at the limit: %d %v, want 503 too_many_connections", code, e)
	}
	closeOne := func(c *presenceclient.Client, left int) {
		_ = c.Close()
		poll.Eventually(t, 5*time.Second, "the connection to end", func() (bool, string) {
			n := g.srv.Connections()
			return n == left, fmt.Sprint(n, " connections")
		})
	}
	closeOne(cs[0], 39)
	if code, _ := ready(); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz one below the limit: %d, want still 503 (hysteresis)", code)
	}
	closeOne(cs[1], 38)
	if code, _ := ready(); code != http.StatusOK {
		t.Fatalf("/readyz two below the limit: %d, want 200", code)
	}
	// Filling up again turns it not ready again.
	g.connect("again1", false)
	if code, _ := ready(); code != http.StatusOK {
		t.Fatalf("/readyz at 39 on the way up: %d, want 200", code)
	}
	g.connect("again2", false)
	if code, _ := ready(); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz back at the limit: %d, want 503", code)
	}
}
