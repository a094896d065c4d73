package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presencekit/presence-operator/gateway/auth"
)

// forbiddenIDs checks an error frame is forbidden, with the id, listing
// exactly want in userIds.
func forbiddenIDs(t *testing.T, m map[string]any, id any, want ...string) {
	t.Helper()
	var got []string
	list, _ := m["userIds"].([]any)
	for _, x := range list {
		s, _ := x.(string)
		got = append(got, s)
	}
	if m["code"] != "forbidden" || m["id"] != id || !slices.Equal(got, want) {
		t.Fatalf("got %v, want error forbidden with id %v and userIds %v", m, id, want)
	}
}

// TestWatchClaim: a connection whose token has a "watch" claim may
// subscribe to and query only the ids and prefixes it lists. A request
// naming anybody else gets forbidden, listing them, subscribes to none of
// its users, and the connection stays open. /v1/presence applies the
// caller's claim the same way.
func TestWatchClaim(t *testing.T) {
	g := start(t, setup{verifier: hsVerifier(t, "k", auth.Options{})})
	token := hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": later(), "watch": []string{"bob", "team:*"}})
	alice, err := g.dialRaw("/?token="+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	alice.expectType("welcome")

	alice.send(map[string]any{"type": "subscribe", "id": 1, "userIds": []string{"bob", "team:x"}})
	if us := users(t, alice.expectType("presence")); len(us) != 2 {
		t.Fatalf("snapshot %v, want bob and team:x", us)
	}
	alice.send(map[string]any{"type": "subscribe", "id": 2, "userIds": []string{"team:y", "carol", "dave"}})
	forbiddenIDs(t, alice.expectError("forbidden"), float64(2), "carol", "dave")
	alice.alive()

	// team:y, allowed but named in the refused request, was not
	// subscribed: its online comes before bob's, and alice gets bob's only.
	for _, id := range []string{"team:y", "bob"} {
		c, err := g.dialRaw("/?token="+hsToken(t, "k", jwt.MapClaims{"sub": id, "exp": later()}), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.expectType("welcome")
	}
	for {
		us := users(t, alice.expectType("presence"))
		if _, ok := us["team:y"]; ok {
			t.Fatalf("an event of team:y, which a refused subscribe named: %v", us)
		}
		if _, ok := us["bob"]; ok {
			break
		}
	}

	alice.send(map[string]any{"type": "query", "id": "q", "userIds": []string{"carol"}})
	forbiddenIDs(t, alice.expectError("forbidden"), "q", "carol")
	alice.send(map[string]any{"type": "query", "id": 4, "userIds": []string{"team:z", "bob"}})
	if us := users(t, alice.expectType("presence")); us["bob"]["online"] != true || len(us) != 2 {
		t.Fatalf("query of allowed users: %v", us)
	}
	alice.alive()

	// The HTTP API, with the same token.
	resp, body := g.get("/v1/presence?userId=bob&userId=carol&token="+token, nil)
	if resp.StatusCode != http.StatusForbidden || body["error"] != "forbidden" || body["message"] == "" ||
		fmt.Sprint(body["userIds"]) != "[carol]" {
		t.Fatalf("/v1/presence naming carol: %d %v, want 403 forbidden listing carol", resp.StatusCode, body)
	}
	if resp, body := g.get("/v1/presence?userId=bob&userId=team:q", http.Header{"Authorization": {"Bearer " + token}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("/v1/presence of allowed users: %d %v", resp.StatusCode, body)
	}
	// Without the claim, no restriction.
	free := hsToken(t, "k", jwt.MapClaims{"sub": "backend", "exp": later()})
	if resp, body := g.get("/v1/presence?userId=carol&token="+free, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/v1/presence with a token without watch: %d %v", resp.StatusCode, body)
	}
}

// TestWatchClaimRefresh: a refresh brings the new token's claim; a new
// token with a bad claim is refused and the old claim stays.
func TestWatchClaimRefresh(t *testing.T) {
	g := start(t, setup{verifier: hsVerifier(t, "k", auth.Options{})})
	c, err := g.dialRaw("/?token="+hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": later(), "watch": []string{"bob"}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.expectType("welcome")
	c.send(map[string]any{"type": "refresh", "id": 1, "token": hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": later(), "watch": "carol"})})
	c.expectError("invalid_token")
	c.send(map[string]any{"type": "subscribe", "id": 2, "userIds": []string{"carol"}})
	forbiddenIDs(t, c.expectError("forbidden"), float64(2), "carol")
	c.send(map[string]any{"type": "refresh", "id": 3, "token": hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": later(), "watch": []string{"bob", "carol"}})})
	c.expectType("ok")
	c.send(map[string]any{"type": "subscribe", "id": 4, "userIds": []string{"carol"}})
	c.expectType("presence")
}

// TestRequireWatchClaim: with AUTH_REQUIRE_WATCH_CLAIM a token without the
// claim is refused at the upgrade and by /v1/presence, saying so; an
// empty claim is valid and allows nobody.
func TestRequireWatchClaim(t *testing.T) {
	g := start(t, setup{verifier: hsVerifier(t, "k", auth.Options{RequireWatch: true})})
	without := hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": later()})
	resp, body := g.get("/?token="+without, upgradeHeaders())
	if resp.StatusCode != http.StatusUnauthorized || body["error"] != "unauthorized" ||
		!strings.Contains(fmt.Sprint(body["message"]), "AUTH_REQUIRE_WATCH_CLAIM") {
		t.Fatalf("upgrade without a watch claim: %d %v, want 401 naming AUTH_REQUIRE_WATCH_CLAIM", resp.StatusCode, body)
	}
	if resp, body := g.get("/v1/presence?userId=bob&token="+without, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/v1/presence without a watch claim: %d %v, want 401", resp.StatusCode, body)
	}
	c, err := g.dialRaw("/?token="+hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": later(), "watch": []string{}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.expectType("welcome")
	c.send(map[string]any{"type": "subscribe", "id": 1, "userIds": []string{"bob"}})
	forbiddenIDs(t, c.expectError("forbidden"), float64(1), "bob")
	c.alive()
}

// TestBadWatchClaim: a "watch" claim of the wrong shape refuses the token,
// with a message about the claim.
func TestBadWatchClaim(t *testing.T) {
	g := start(t, setup{verifier: hsVerifier(t, "k", auth.Options{})})
	for name, claim := range map[string]any{
		"a string":          "bob",
		"null":              nil,
		"an object":         map[string]any{"bob": true},
		"a number in it":    []any{"bob", 7},
		"a star in the id":  []string{"te*am"},
		"a leading star":    []string{"*bob"},
		"two stars":         []string{"team**"},
		"an invalid id":     []string{"bob smith"},
		"an invalid prefix": []string{"bob/*"},
		"an empty id":       []string{""},
		"an id too long":    []string{strings.Repeat("b", 129)},
		"a prefix too long": []string{strings.Repeat("b", 128) + "*"},
	} {
		t.Run(name, func(t *testing.T) {
			token := hsToken(t, "k", jwt.MapClaims{"sub": "alice", "exp": later(), "watch": claim})
			resp, body := g.get("/?token="+token, upgradeHeaders())
			if resp.StatusCode != http.StatusUnauthorized || body["error"] != "unauthorized" ||
				!strings.Contains(fmt.Sprint(body["message"]), `"watch"`) {
				t.Fatalf("upgrade with watch %v: %d %v, want 401 about the watch claim", claim, resp.StatusCode, body)
			}
			if resp, body := g.get("/v1/presence?userId=bob&token="+token, nil); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("/v1/presence with watch %v: %d %v, want 401", claim, resp.StatusCode, body)
			}
		})
	}
}
