package memstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/memstore"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
	"github.com/presencekit/presence-operator/internal/poll"
)

func TestConformance(t *testing.T) {
	presencetest.Run(t, func(t *testing.T, opts presence.Options) presence.Store {
		s, err := memstore.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, presencetest.Config{})
}

// TestVersionSurvivesForgetting: a user offline and unwatched for longer
// than the retention is forgotten (the map stays bounded); when it comes
// back its version must still be above every version a client kept, or a
// client keeping the highest version would ignore it for ever.
func TestVersionSurvivesForgetting(t *testing.T) {
	clock := &presencetest.Clock{}
	s, err := memstore.New(presence.Options{TTL: time.Minute, Heartbeat: 10 * time.Millisecond,
		OnEvent: func(presence.User) {}, Now: clock.Now, Metrics: presence.NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	c := presence.Conn{UserID: "ulysses", ID: "c1"}
	if _, err := s.Connect(ctx, c); err != nil {
		t.Fatal(err)
	}
	off, err := s.Disconnect(ctx, c)
	if err != nil || off.Online {
		t.Fatalf("Disconnect: %+v, %v", off, err)
	}
	clock.Advance(25 * time.Hour)
	poll.Eventually(t, 5*time.Second, "the user forgotten (lastSeen 0)", func() (bool, string) {
		us, err := s.Get(ctx, []string{c.UserID})
		return err == nil && us[0].LastSeen == 0, fmt.Sprint(us, err)
	})
	back, err := s.Connect(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if back.Version <= off.Version {
		t.Fatalf("back after being forgotten with version %d, but clients kept %d from before", back.Version, off.Version)
	}
}
