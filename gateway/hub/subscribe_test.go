package hub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/hub"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/memstore"
	"github.com/presencekit/presence-operator/internal/poll"
)

// slowStore is a memstore whose Watch waits until the test releases it,
// then fails with failWith (or watches).
type slowStore struct {
	*memstore.Store
	entered  chan string
	release  chan struct{}
	failWith error
}

func (s *slowStore) Watch(ctx context.Context, id string) error {
	s.entered <- id
	<-s.release
	if s.failWith != nil {
		return s.failWith
	}
	return s.Store.Watch(ctx, id)
}

func newSlowHub(t *testing.T, failWith error) (*hub.Hub, *slowStore) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var h *hub.Hub
	ms, err := memstore.New(presence.Options{TTL: time.Minute, Heartbeat: time.Second, Metrics: presence.NewMetrics(reg),
		OnEvent: func(u presence.User) { h.Publish(u) }})
	if err != nil {
		t.Fatal(err)
	}
	ss := &slowStore{Store: ms, entered: make(chan string, 1), release: make(chan struct{}), failWith: failWith}
	h = hub.New(ss, hub.NewMetrics(reg))
	return h, ss
}

// subscribeWhileWatching starts a's Subscribe to x (which blocks in the
// store's Watch) and then b's, and returns once b is among x's
// subscribers (seen by a probe event) while a's Watch still waits.
func subscribeWhileWatching(t *testing.T, h *hub.Hub, ss *slowStore, bCtx context.Context) (a, b *sub, aErr, bErr chan error) {
	t.Helper()
	a, b = &sub{}, &sub{}
	aErr, bErr = make(chan error, 1), make(chan error, 1)
	go func() { aErr <- h.Subscribe(context.Background(), a, []string{"x"}) }()
	if id := <-ss.entered; id != "x" {
		t.Fatalf("Watch(%q), want x", id)
	}
	go func() { bErr <- h.Subscribe(bCtx, b, []string{"x"}) }()
	poll.Eventually(t, 5*time.Second, "b among x's subscribers", func() (bool, string) {
		h.Publish(presence.User{UserID: "x"}) // version 0: always delivered
		return len(b.got()) > 0, ""
	})
	return a, b, aErr, bErr
}

// TestSubscribeWaitsForTheWatchInPlace: a second subscriber to a user
// whose Watch (made by the first) is still under way does not return as
// if the user were watched: it waits for that Watch, so the snapshot it
// reads next misses no change. Here its context ends first: it gets the
// error and is not left subscribed.
func TestSubscribeWaitsForTheWatchInPlace(t *testing.T) {
	h, ss := newSlowHub(t, nil)
	bCtx, cancelB := context.WithCancel(context.Background())
	a, b, aErr, bErr := subscribeWhileWatching(t, h, ss, bCtx)
	cancelB()
	if err := <-bErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("b's Subscribe returned %v while a's Watch of x was under way; want it to wait (and end with its context)", err)
	}
	close(ss.release)
	if err := <-aErr; err != nil {
		t.Fatal(err)
	}
	aBefore, bBefore := len(a.got()), len(b.got())
	if _, err := ss.Connect(context.Background(), presence.Conn{UserID: "x", ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if len(a.got()) != aBefore+1 || len(b.got()) != bBefore {
		t.Fatalf("after x came online: a got %d new events (want 1), b %d (want 0: its Subscribe failed)",
			len(a.got())-aBefore, len(b.got())-bBefore)
	}
}

// TestFailedWatchUndoesEverySubscriber: when the one Watch of a user fails,
// every Subscribe waiting on it returns the error and none stays subscribed.
func TestFailedWatchUndoesEverySubscriber(t *testing.T) {
	boom := errors.New("store down")
	h, ss := newSlowHub(t, boom)
	a, b, aErr, bErr := subscribeWhileWatching(t, h, ss, context.Background())
	close(ss.release)
	if err := <-aErr; !errors.Is(err, boom) {
		t.Fatalf("a: %v, want %v", err, boom)
	}
	if err := <-bErr; !errors.Is(err, boom) {
		t.Fatalf("b: %v, want %v (the Watch it relied on failed)", err, boom)
	}
	if n := h.Watched(); n != 0 {
		t.Fatalf("watched %d users after the failed Watch, want 0", n)
	}
	aBefore, bBefore := len(a.got()), len(b.got())
	h.Publish(presence.User{UserID: "x", Version: 100, Online: true})
	if len(a.got()) != aBefore || len(b.got()) != bBefore {
		t.Fatal("a subscriber of the failed Watch still gets x's events")
	}
}

// TestPublishDoesNotWaitOnAWatch: a user's Watch under way (a network
// round trip on Redis) does not hold up events of other users.
func TestPublishDoesNotWaitOnAWatch(t *testing.T) {
	h, ss := newSlowHub(t, nil)
	ready := &sub{}
	// y is watched before x's Watch blocks.
	go func() { _ = h.Subscribe(context.Background(), ready, []string{"y"}) }()
	<-ss.entered
	ss.release <- struct{}{}
	poll.Eventually(t, 5*time.Second, "y watched", func() (bool, string) {
		h.Publish(presence.User{UserID: "y"})
		return len(ready.got()) > 0, ""
	})
	done := make(chan error, 1)
	go func() { done <- h.Subscribe(context.Background(), &sub{}, []string{"x"}) }()
	<-ss.entered
	before := len(ready.got())
	h.Publish(presence.User{UserID: "y", Version: 7})
	if len(ready.got()) != before+1 {
		t.Fatal("y's event was not delivered while x's Watch was under way")
	}
	close(ss.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
