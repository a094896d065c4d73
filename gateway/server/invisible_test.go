package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/internal/poll"
)

// TestInvisibleOverTheWire: a "status invisible" frame shows the user
// offline to its watchers, queries and /v1/presence, while it keeps its
// connection and subscriptions; another status shows it online again; its
// last connection closing publishes nothing more.
func TestInvisibleOverTheWire(t *testing.T) {
	g := start(t, setup{})
	a := g.dialWelcome("alice")
	a.send(map[string]any{"type": "subscribe", "id": 1, "userIds": []string{"bob"}})
	a.expectType("presence")
	b := g.dialWelcome("bob")
	b.send(map[string]any{"type": "subscribe", "id": 1, "userIds": []string{"carol"}})
	b.expectType("presence")
	on := users(t, a.read())["bob"]

	b.send(map[string]any{"type": "status", "id": "hide", "status": "invisible"})
	if m := b.expectType("ok"); m["id"] != "hide" {
		t.Fatalf("status answer %v", m)
	}
	hid := users(t, a.read())["bob"]
	if hid["online"] != false || hid["status"] != "offline" || hid["connections"] != 0.0 ||
		hid["version"].(float64) <= on["version"].(float64) || hid["lastSeen"].(float64) < on["lastSeen"].(float64) {
		t.Fatalf("event on going invisible %v, want offline with a newer version, lastSeen now", hid)
	}
	a.send(map[string]any{"type": "query", "id": 2, "userIds": []string{"bob"}})
	if q := users(t, a.expectType("presence"))["bob"]; q["online"] != false || q["lastSeen"] != hid["lastSeen"] || q["version"] != hid["version"] {
		t.Fatalf("query of the invisible user %v, want as the event %v", q, hid)
	}
	if resp, body := g.get("/v1/presence?userId=bob", nil); resp.StatusCode != http.StatusOK ||
		body["users"].([]any)[0].(map[string]any)["online"] != false {
		t.Fatalf("/v1/presence of the invisible user: %d %v", resp.StatusCode, body)
	}

	// The invisible user keeps its subscriptions: it still hears carol.
	g.dialWelcome("carol")
	if c := users(t, b.read())["carol"]; c["online"] != true {
		t.Fatalf("the invisible user's subscription: %v", c)
	}

	b.send(map[string]any{"type": "status", "id": "back", "status": "busy"})
	b.expectType("ok")
	back := users(t, a.read())["bob"]
	if back["online"] != true || back["status"] != "busy" || back["version"].(float64) <= hid["version"].(float64) {
		t.Fatalf("event on coming back %v", back)
	}

	// Invisible again, then gone: no second offline. Carol's event, which
	// alice watches from now on, comes after anything about bob.
	b.send(map[string]any{"type": "status", "status": "invisible"})
	b.expectType("ok")
	hid2 := users(t, a.read())["bob"]
	if hid2["online"] != false {
		t.Fatalf("event on hiding again %v", hid2)
	}
	if err := b.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	// The gauge drops after the store removed the connection.
	poll.Eventually(t, 5*time.Second, "bob's connection removed", func() (bool, string) {
		n := g.counter(g.metrics.Connections)
		return n == 2, fmt.Sprint("connections = ", n)
	})
	a.send(map[string]any{"type": "subscribe", "id": 3, "userIds": []string{"carol"}})
	a.expectType("presence")
	g.dialWelcome("carol")
	for {
		us := users(t, a.read())
		if u, ok := us["bob"]; ok {
			t.Fatalf("an event about the invisible user after it left: %v", u)
		}
		if _, ok := us["carol"]; ok {
			break
		}
	}
	a.send(map[string]any{"type": "query", "id": 4, "userIds": []string{"bob"}})
	if q := users(t, a.expectType("presence"))["bob"]; q["online"] != false || q["lastSeen"] != hid2["lastSeen"] || q["version"] != hid2["version"] {
		t.Fatalf("the invisible user after it left %v, want as when it hid %v", q, hid2)
	}
}
