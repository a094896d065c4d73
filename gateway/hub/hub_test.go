package hub_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presencekit/presence-operator/gateway/hub"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/memstore"
)

// countingStore counts Watch/Unwatch calls on a real memstore.
type countingStore struct {
	*memstore.Store
	mu               sync.Mutex
	watches, unwatch map[string]int
}

func (s *countingStore) Watch(ctx context.Context, id string) error {
	s.mu.Lock()
	s.watches[id]++
	s.mu.Unlock()
	return s.Store.Watch(ctx, id)
}

func (s *countingStore) Unwatch(ctx context.Context, id string) error {
	s.mu.Lock()
	s.unwatch[id]++
	s.mu.Unlock()
	return s.Store.Unwatch(ctx, id)
}

type sub struct {
	mu     sync.Mutex
	frames []presence.User
}

func (s *sub) Deliver(userID string, frame []byte) {
	var f struct {
		Type  string          `json:"type"`
		Users []presence.User `json:"users"`
	}
	if err := json.Unmarshal(frame, &f); err != nil || f.Type != "presence" || len(f.Users) != 1 || f.Users[0].UserID != userID {
		panic("bad frame " + string(frame))
	}
	s.mu.Lock()
	s.frames = append(s.frames, f.Users[0])
	s.mu.Unlock()
}

func (s *sub) got() []presence.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]presence.User(nil), s.frames...)
}

func newHub(t testing.TB) (*hub.Hub, *countingStore, *hub.Metrics) {
	reg := prometheus.NewRegistry()
	m := hub.NewMetrics(reg)
	var h *hub.Hub
	ms, err := memstore.New(presence.Options{TTL: time.Minute, Heartbeat: time.Second, Metrics: presence.NewMetrics(reg),
		OnEvent: func(u presence.User) { h.Publish(u) }})
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: ms, watches: map[string]int{}, unwatch: map[string]int{}}
	h = hub.New(cs, m)
	return h, cs, m
}

func TestWatchOncePerUser(t *testing.T) {
	h, cs, m := newHub(t)
	ctx := context.Background()
	a, b := &sub{}, &sub{}
	if err := h.Subscribe(ctx, a, []string{"x", "y"}); err != nil {
		t.Fatal(err)
	}
	if err := h.Subscribe(ctx, b, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if cs.watches["x"] != 1 || cs.watches["y"] != 1 || h.Watched() != 2 {
		t.Fatalf("watches %v, watched %d", cs.watches, h.Watched())
	}
	if _, err := cs.Connect(ctx, presence.Conn{UserID: "x", ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if len(a.got()) != 1 || len(b.got()) != 1 || !a.got()[0].Online {
		t.Fatalf("a %v b %v", a.got(), b.got())
	}
	if got := testutil.ToFloat64(m.EventsDeliveredTotal); got != 2 {
		t.Fatalf("events delivered %v", got)
	}
	h.Unsubscribe(ctx, a, []string{"x", "y"})
	if cs.unwatch["x"] != 0 || cs.unwatch["y"] != 1 {
		t.Fatalf("x is still watched by b: unwatch %v", cs.unwatch)
	}
	h.Unsubscribe(ctx, b, []string{"x"})
	if cs.unwatch["x"] != 1 || h.Watched() != 0 {
		t.Fatalf("unwatch %v, watched %d", cs.unwatch, h.Watched())
	}
}

func TestStaleEventsDropped(t *testing.T) {
	h, _, _ := newHub(t)
	s := &sub{}
	if err := h.Subscribe(context.Background(), s, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	h.Publish(presence.User{UserID: "x", Version: 5, Online: true})
	h.Publish(presence.User{UserID: "x", Version: 4})
	h.Publish(presence.User{UserID: "x", Version: 6})
	h.Publish(presence.User{UserID: "nobody", Version: 1})
	got := s.got()
	if len(got) != 2 || got[0].Version != 5 || got[1].Version != 6 {
		t.Fatalf("delivered %+v, want versions 5 and 6", got)
	}
}

// TestVersionZeroDoesNotReset: an event without a version (0) after a
// versioned one is dropped, and does not let an older event through.
func TestVersionZeroDoesNotReset(t *testing.T) {
	h, _, _ := newHub(t)
	s := &sub{}
	if err := h.Subscribe(context.Background(), s, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	h.Publish(presence.User{UserID: "x", Version: 5, Online: true})
	h.Publish(presence.User{UserID: "x"})             // version 0
	h.Publish(presence.User{UserID: "x", Version: 4}) // stale
	h.Publish(presence.User{UserID: "x", Version: 6})
	got := s.got()
	if len(got) != 2 || got[0].Version != 5 || got[1].Version != 6 {
		t.Fatalf("delivered %+v, want versions 5 and 6", got)
	}
}

// TestConcurrentSubscribeUnsubscribe: racing calls leave the store
// watching exactly the users somebody here still wants.
func TestConcurrentSubscribeUnsubscribe(t *testing.T) {
	h, cs, _ := newHub(t)
	ctx := context.Background()
	ids := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for range 8 {
		s := &sub{}
		wg.Go(func() {
			for range 50 {
				if err := h.Subscribe(ctx, s, ids); err != nil {
					t.Error(err)
				}
				h.Unsubscribe(ctx, s, ids)
			}
		})
	}
	wg.Wait()
	keep := &sub{}
	if err := h.Subscribe(ctx, keep, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if h.Watched() != 1 {
		t.Fatalf("watched %d, want 1", h.Watched())
	}
	cs.mu.Lock()
	for _, id := range ids {
		want := 0
		if id == "a" {
			want = 1
		}
		if got := cs.watches[id] - cs.unwatch[id]; got != want {
			t.Errorf("%s: %d watches - %d unwatches = %d, want %d", id, cs.watches[id], cs.unwatch[id], got, want)
		}
	}
	cs.mu.Unlock()
	if _, err := cs.Connect(ctx, presence.Conn{UserID: "a", ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if len(keep.got()) != 1 {
		t.Fatalf("the remaining subscriber got %v", keep.got())
	}
}
