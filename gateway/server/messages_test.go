package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/internal/poll"
)

func TestTextPing(t *testing.T) {
	g := start(t, setup{})
	c := g.dialWelcome("u1")
	c.sendText("ping")
	typ, b, err := c.readRaw()
	if err != nil || typ != websocket.MessageText || string(b) != "pong" {
		t.Fatalf("text ping answered %v %q %v, want the text pong", typ, b, err)
	}
}

func TestJSONPing(t *testing.T) {
	g := start(t, setup{})
	c := g.dialWelcome("u1")
	c.sendText(`{"type":"ping","id":42}`)
	if m := c.expectType("pong"); m["id"] != 42.0 {
		t.Fatalf("pong %v, want id 42", m)
	}
	c.sendText(`{"type":"ping","id":"x-1"}`)
	if m := c.expectType("pong"); m["id"] != "x-1" {
		t.Fatalf("pong %v, want id x-1", m)
	}
	c.sendText(`{"type":"ping"}`)
	if m := c.expectType("pong"); len(m) != 1 {
		t.Fatalf("pong without id: %v, want only the type", m)
	}
}

func TestQuery(t *testing.T) {
	g := start(t, setup{})
	g.dialWelcome("bob")
	g.dialWelcome("bob")
	a := g.dialWelcome("alice")
	a.send(map[string]any{"type": "query", "id": "q", "userIds": []string{"bob", "nobody", "alice"}})
	m := a.read()
	if m["id"] != "q" {
		t.Fatalf("presence %v, want id q", m)
	}
	us := users(t, m)
	b := us["bob"]
	if b["online"] != true || b["status"] != "online" || b["connections"] != 2.0 || b["text"] != "" ||
		b["lastSeen"].(float64) <= 0 || b["version"].(float64) <= 0 {
		t.Fatalf("bob %v", b)
	}
	n := us["nobody"]
	if n["online"] != false || n["status"] != "offline" || n["connections"] != 0.0 || n["lastSeen"] != 0.0 || n["version"] != 0.0 {
		t.Fatalf("nobody %v", n)
	}
	if us["alice"]["online"] != true {
		t.Fatalf("alice %v", us["alice"])
	}
	// The order asked is kept.
	list := m["users"].([]any)
	if list[0].(map[string]any)["userId"] != "bob" || list[2].(map[string]any)["userId"] != "alice" {
		t.Fatalf("order: %v", list)
	}
}

func TestSubscribeSnapshotThenEvents(t *testing.T) {
	g := start(t, setup{})
	a := g.dialWelcome("alice")
	a.send(map[string]any{"type": "subscribe", "id": 1, "userIds": []string{"bob"}})
	snap := a.read()
	if snap["id"] != 1.0 || users(t, snap)["bob"]["online"] != false {
		t.Fatalf("snapshot %v", snap)
	}

	b := g.dialWelcome("bob")
	on := a.read()
	if _, hasID := on["id"]; hasID {
		t.Fatalf("event %v must carry no id", on)
	}
	bob := users(t, on)["bob"]
	if bob["online"] != true || bob["connections"] != 1.0 {
		t.Fatalf("online event %v", bob)
	}
	v1 := bob["version"].(float64)

	b.send(map[string]any{"type": "status", "id": "s", "status": "away", "text": "lunch"})
	if m := b.expectType("ok"); m["id"] != "s" {
		t.Fatalf("status answer %v", m)
	}
	st := users(t, a.read())["bob"]
	if st["status"] != "away" || st["text"] != "lunch" || st["version"].(float64) <= v1 {
		t.Fatalf("status event %v", st)
	}

	if err := b.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	off := users(t, a.read())["bob"]
	if off["online"] != false || off["status"] != "offline" || off["lastSeen"].(float64) <= 0 ||
		off["version"].(float64) <= st["version"].(float64) {
		t.Fatalf("offline event %v", off)
	}
}

func TestSubscribeFanOutToSeveralWatchers(t *testing.T) {
	g := start(t, setup{})
	w1, w2 := g.dialWelcome("w1"), g.dialWelcome("w2")
	for _, w := range []*client{w1, w2} {
		w.send(map[string]any{"type": "subscribe", "userIds": []string{"star"}})
		w.expectType("presence")
	}
	g.dialWelcome("star")
	for _, w := range []*client{w1, w2} {
		if u := users(t, w.read())["star"]; u["online"] != true {
			t.Fatalf("event %v", u)
		}
	}
	if got := g.counter(g.stored.WatchedUsers); got != 1 {
		t.Fatalf("watched_users %v, want 1 (one store watch for two watchers)", got)
	}
}

func TestUnsubscribe(t *testing.T) {
	g := start(t, setup{})
	a := g.dialWelcome("alice")
	a.send(map[string]any{"type": "subscribe", "userIds": []string{"bob"}})
	a.expectType("presence")
	a.send(map[string]any{"type": "unsubscribe", "id": 5, "userIds": []string{"bob", "never-subscribed"}})
	if m := a.expectType("ok"); m["id"] != 5.0 {
		t.Fatalf("unsubscribe answer %v", m)
	}
	// Bob's online event would be queued before the pong below.
	g.dialWelcome("bob")
	a.alive()
	if got := g.counter(g.stored.WatchedUsers); got != 0 {
		t.Fatalf("watched_users %v after the last unsubscribe", got)
	}
}

func TestStatus(t *testing.T) {
	g := start(t, setup{})
	b := g.dialWelcome("bob")
	b.send(map[string]any{"type": "status", "id": 9, "status": "busy", "text": "call"})
	if m := b.expectType("ok"); m["id"] != 9.0 {
		t.Fatalf("%v", m)
	}
	a := g.dialWelcome("alice")
	a.send(map[string]any{"type": "query", "userIds": []string{"bob"}})
	if u := users(t, a.read())["bob"]; u["status"] != "busy" || u["text"] != "call" {
		t.Fatalf("bob %v", u)
	}
	b.send(map[string]any{"type": "status", "status": "offline"})
	b.expectError("bad_request")
	b.alive()
}

func TestErrorsKeepTheConnection(t *testing.T) {
	g := start(t, setup{})
	c := g.dialWelcome("u1")
	tests := []struct {
		frame, code string
		id          any
	}{
		{`{not json`, "bad_request", nil},
		{`{"type":"query","id":3}`, "bad_request", 3.0},
		{`{"type":"query","userIds":["bad id"]}`, "bad_request", nil},
		{`{"type":"dance","id":"d"}`, "unknown_type", "d"},
		{`{"type":"query","id":"big","userIds":["` + strings.Join(idList("u", 101), `","`) + `"]}`, "too_many_ids", "big"},
	}
	for _, tc := range tests {
		c.sendText(tc.frame)
		m := c.expectError(tc.code)
		if m["id"] != tc.id {
			t.Fatalf("%s: error id %v, want %v", tc.frame, m["id"], tc.id)
		}
		c.alive()
	}
}

func TestTooManySubscriptions(t *testing.T) {
	g := start(t, setup{})
	c := g.dialWelcome("u1")
	for i := range 10 {
		c.send(map[string]any{"type": "subscribe", "userIds": idList("s"+string(rune('a'+i)), 100)})
		c.expectType("presence")
	}
	// Subscribing again to watched users costs nothing.
	c.send(map[string]any{"type": "subscribe", "userIds": []string{"sa0"}})
	c.expectType("presence")
	c.send(map[string]any{"type": "subscribe", "id": "x", "userIds": []string{"one-more"}})
	if m := c.expectError("too_many_subscriptions"); m["id"] != "x" {
		t.Fatalf("%v", m)
	}
	c.alive()
	c.send(map[string]any{"type": "unsubscribe", "userIds": []string{"sa0"}})
	c.expectType("ok")
	c.send(map[string]any{"type": "subscribe", "userIds": []string{"one-more"}})
	c.expectType("presence")
}

func TestRateLimitedKeepsTheConnection(t *testing.T) {
	clock := newFakeClock()
	g := start(t, setup{cfg: func(c *config.Config) { c.MessageRate, c.MessageBurst = 5, 2 }, clock: clock})
	c := g.dialWelcome("u1")
	for range 3 {
		c.sendText(`{"type":"ping"}`)
	}
	c.expectType("pong")
	c.expectType("pong")
	c.expectError("rate_limited")
	// Tokens come back at 5 a second: the connection is usable again.
	clock.advance(200 * time.Millisecond)
	c.sendText(`{"type":"ping"}`)
	c.expectType("pong")
	c.sendText(`{"type":"ping"}`)
	c.expectError("rate_limited")
}

func TestMultipleConnectionsOneUser(t *testing.T) {
	g := start(t, setup{})
	w := g.dialWelcome("watcher")
	w.send(map[string]any{"type": "subscribe", "userIds": []string{"multi"}})
	w.expectType("presence")
	tab1 := g.dialWelcome("multi")
	if u := users(t, w.read())["multi"]; u["connections"] != 1.0 {
		t.Fatalf("%v", u)
	}
	g.dialWelcome("multi")
	if u := users(t, w.read())["multi"]; u["connections"] != 2.0 || u["online"] != true {
		t.Fatalf("%v", u)
	}
	_ = tab1.c.Close(websocket.StatusNormalClosure, "")
	if u := users(t, w.read())["multi"]; u["connections"] != 1.0 || u["online"] != true {
		t.Fatalf("closing one tab: %v, want still online with 1 connection", u)
	}
}

func TestOfflineGraceNoFlap(t *testing.T) {
	const grace = 500 * time.Millisecond
	g := start(t, setup{cfg: func(c *config.Config) { c.OfflineGrace = grace }})
	w := g.dialWelcome("watcher")
	w.send(map[string]any{"type": "subscribe", "userIds": []string{"flaky"}})
	w.expectType("presence")
	f := g.dialWelcome("flaky")
	w.read() // online
	_ = f.c.Close(websocket.StatusNormalClosure, "reload")
	if u := users(t, w.read())["flaky"]; u["online"] != true || u["connections"] != 0.0 {
		t.Fatalf("within the grace: %v, want online with 0 connections", u)
	}
	g.dialWelcome("flaky")
	if u := users(t, w.read())["flaky"]; u["online"] != true || u["connections"] != 1.0 {
		t.Fatalf("after the reconnect: %v", u)
	}
	// Past the grace, the watcher has still seen no offline event.
	poll.Consistently(t, grace+300*time.Millisecond, "no frame but pongs after a reconnect within the grace", func() (bool, string) {
		w.sendText("ping")
		_, b, err := w.readRaw()
		if err != nil {
			t.Fatal(err)
		}
		return string(b) == "pong", fmt.Sprintf("unexpected frame: %s", b)
	})
	// And a disconnect with no reconnect does go offline after the grace.
	g2 := g.dialWelcome("gone")
	w.send(map[string]any{"type": "subscribe", "userIds": []string{"gone"}})
	w.expectType("presence")
	_ = g2.c.Close(websocket.StatusNormalClosure, "")
	w.read() // online, 0 connections
	if u := users(t, w.read())["gone"]; u["online"] != false {
		t.Fatalf("after the grace: %v, want offline", u)
	}
}
