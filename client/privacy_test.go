package client_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/client"
)

// TestInvisibleAndTheWatchClaim: a subscribe naming a user the token's
// "watch" claim does not allow fails with forbidden, listing that user,
// and leaves the watchlist; an invisible user shows offline to its
// watcher and comes back with another status.
func TestInvisibleAndTheWatchClaim(t *testing.T) {
	g := startGateway(t, "AUTH_JWT_SECRET="+secret)
	tokenFor := func(claims map[string]any) func(context.Context) (string, error) {
		return func(context.Context) (string, error) {
			claims["exp"] = time.Now().Add(time.Hour).Unix()
			return signHS256(t, claims, secret), nil
		}
	}
	alice := dial(t, client.Options{URL: g.url(), Token: tokenFor(map[string]any{"sub": "alice", "watch": []string{"bob"}})})
	bob := dial(t, client.Options{URL: g.url(), Token: tokenFor(map[string]any{"sub": "bob"})})
	ctx := context.Background()

	err := alice.Subscribe(ctx, "bob", "carol")
	var refused *client.Error
	if !errors.As(err, &refused) || refused.Code != "forbidden" || !slices.Equal(refused.Forbidden, []string{"carol"}) {
		t.Fatalf("Subscribe(bob, carol) = %v, want forbidden listing carol", err)
	}
	if w := alice.Watchlist(); len(w) != 0 {
		t.Fatalf("watchlist after a forbidden subscribe: %v, want empty", w)
	}
	if _, err := alice.Query(ctx, "carol"); !errors.As(err, &refused) || refused.Code != "forbidden" {
		t.Fatalf("Query(carol) = %v, want forbidden", err)
	}
	if err := alice.Subscribe(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice sees bob online", online(alice, "bob", ""))

	if err := bob.SetStatus(ctx, client.StatusInvisible, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice sees bob offline", func() bool {
		u, ok := alice.Get("bob")
		return ok && !u.Online && u.Status == "offline"
	})
	if err := bob.SetStatus(ctx, client.StatusAway, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice sees bob away", online(alice, "bob", client.StatusAway))
}
