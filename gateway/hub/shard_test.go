package hub

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/memstore"
)

// stuckSub is a subscriber whose Deliver blocks until released: a
// stand-in for a fan-out that takes long.
type stuckSub struct {
	entered chan struct{}
	release chan struct{}
}

func (s *stuckSub) Deliver(string, []byte) {
	s.entered <- struct{}{}
	<-s.release
}

type nopSub struct{ got chan string }

func (s *nopSub) Deliver(id string, _ []byte) { s.got <- id }

// TestPublishHoldsOnlyItsShard: while one user's fan-out is under way, a
// user of another shard is published without waiting for it.
func TestPublishHoldsOnlyItsShard(t *testing.T) {
	reg := prometheus.NewRegistry()
	var h *Hub
	ms, err := memstore.New(presence.Options{TTL: time.Minute, Heartbeat: time.Second, Metrics: presence.NewMetrics(reg),
		OnEvent: func(u presence.User) { h.Publish(u) }})
	if err != nil {
		t.Fatal(err)
	}
	h = New(ms, NewMetrics(reg))
	other := ""
	for i := range 1000 {
		if id := fmt.Sprint("u", i); h.shard(id) != h.shard("slow") {
			other = id
			break
		}
	}
	stuck := &stuckSub{entered: make(chan struct{}), release: make(chan struct{})}
	fast := &nopSub{got: make(chan string, 1)}
	ctx := context.Background()
	if err := h.Subscribe(ctx, stuck, []string{"slow"}); err != nil {
		t.Fatal(err)
	}
	if err := h.Subscribe(ctx, fast, []string{other}); err != nil {
		t.Fatal(err)
	}
	go h.Publish(presence.User{UserID: "slow", Version: 1})
	<-stuck.entered
	defer close(stuck.release)
	done := make(chan struct{})
	go func() {
		h.Publish(presence.User{UserID: other, Version: 1})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publishing a user of another shard waited on a fan-out under way")
	}
	if id := <-fast.got; id != other {
		t.Fatalf("delivered %q", id)
	}
}
