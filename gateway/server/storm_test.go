package server_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	presenceclient "github.com/presencekit/presence-operator/client"
	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/internal/poll"
)

// watcherState is what one watcher knows: the newest state of each user
// it watches, and how its connection ended.
type watcherState struct {
	mu       sync.Mutex
	latest   map[string]stateSeen
	frames   int
	ended    error
	backward int // events older than one already seen
}

type stateSeen struct {
	online  bool
	version int64
}

// follow reads c until it ends, keeping the newest state of each user.
func (w *watcherState) follow(c *websocket.Conn) {
	for range 10_000_000 {
		_, b, err := c.Read(context.Background())
		if err != nil {
			w.mu.Lock()
			w.ended = err
			w.mu.Unlock()
			return
		}
		var f struct {
			Type  string          `json:"type"`
			ID    json.RawMessage `json:"id"`
			Users []struct {
				UserID  string `json:"userId"`
				Online  bool   `json:"online"`
				Version int64  `json:"version"`
			} `json:"users"`
		}
		if json.Unmarshal(b, &f) != nil || f.Type != "presence" {
			continue
		}
		w.mu.Lock()
		w.frames++
		for _, u := range f.Users {
			old, ok := w.latest[u.UserID]
			if ok && u.Version < old.version {
				if f.ID == nil {
					w.backward++ // only events must be monotonic; snapshots may cross them
				}
				continue
			}
			w.latest[u.UserID] = stateSeen{u.Online, u.Version}
		}
		w.mu.Unlock()
	}
}

// TestMassDisconnectKeepsWatchers: ten watchers of the same 1,000 users
// (the most one connection may watch), reading as fast as they can, while
// those 1,000 users connect and close at once. No watcher is cut as a slow
// consumer, and each ends up with the true final state of every user.
func TestMassDisconnectKeepsWatchers(t *testing.T) {
	const nUsers, nWatchers = 1000, 10
	g := start(t, setup{cfg: func(c *config.Config) { c.MessageRate, c.MessageBurst, c.IdleTimeout = 1000, 1000, time.Hour }})
	ids := idList("storm", nUsers)
	watchers := make([]*watcherState, nWatchers)
	for i := range watchers {
		c := g.dialWelcome(idList("watcher", nWatchers)[i])
		for j := 0; j < nUsers; j += 100 {
			c.send(map[string]any{"type": "subscribe", "userIds": ids[j : j+100]})
			c.expectType("presence")
		}
		w := &watcherState{latest: make(map[string]stateSeen, nUsers)}
		watchers[i] = w
		go w.follow(c.c)
	}

	// The users connect all at once, then close all at once (the moment a
	// replica dies and its clients leave): every watcher gets 2,000 events
	// in two bursts. The users are the Go client; the watchers above stay
	// raw, since the test checks the order of the events on the wire and
	// that no watcher is cut, which the client would hide (it drops older
	// states and reconnects).
	began := time.Now()
	conns := make([]*presenceclient.Client, nUsers)
	var wg sync.WaitGroup
	errs := make(chan error, nUsers)
	for i, id := range ids {
		wg.Go(func() {
			// All at once on a shared machine: a long bound on each step
			// (with -race at a load average of 20, 1,000 dials took 79 s
			// and one welcome missed a one-minute bound).
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			c, err := presenceclient.Dial(ctx, presenceclient.Options{URL: g.ws, UserID: id, DiscardEvents: true})
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	t.Logf("%d users connected in %s", nUsers, time.Since(began).Round(time.Millisecond))
	for _, c := range conns {
		if c != nil {
			wg.Go(func() { _ = c.Close() })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a storm client: %v", err)
	}

	var truth []presence.User
	poll.Eventually(t, time.Minute, "every storm user offline in the store", func() (bool, string) {
		var err error
		if truth, err = g.store.Get(t.Context(), ids); err != nil {
			t.Fatal(err)
		}
		for _, u := range truth {
			if u.Online {
				return false, u.UserID + " online"
			}
		}
		return true, ""
	})
	poll.Eventually(t, 30*time.Second, "every watcher holds the true final state", func() (bool, string) {
		for i, w := range watchers {
			w.mu.Lock()
			ended := w.ended
			wrong := 0
			for _, u := range truth {
				if got := w.latest[u.UserID]; got.version != u.Version || got.online != u.Online {
					wrong++
				}
			}
			w.mu.Unlock()
			if ended != nil {
				t.Fatalf("watcher %d was cut: %v", i, ended)
			}
			if wrong > 0 {
				return false, "watcher " + idList("", nWatchers)[i] + " differs on some users"
			}
		}
		return true, ""
	})
	frames := 0
	for i, w := range watchers {
		w.mu.Lock()
		frames += w.frames
		if w.backward != 0 {
			t.Errorf("watcher %d saw %d events older than one it had", i, w.backward)
		}
		w.mu.Unlock()
	}
	if got := g.counter(g.metrics.SlowConsumerDisconnects); got != 0 {
		t.Fatalf("slow_consumer_disconnects_total = %v, want 0", got)
	}
	t.Logf("%d users connected and closed; %d watchers converged in %s with %d presence frames in all, %v events coalesced",
		nUsers, nWatchers, time.Since(began).Round(time.Millisecond), frames, g.counter(g.metrics.EventsCoalescedTotal))
}
