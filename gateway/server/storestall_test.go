package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/gateway/presence"
)

// stallingStore is a store whose status writes fail while it is stalled,
// as Redis writes do while a shard has no master: each waits up to hang
// for the stall to end (0: fails at once), then fails with
// ErrUnavailable. A write that sees the stall end goes through.
type stallingStore struct {
	presence.Store
	hang time.Duration

	mu      sync.Mutex
	release chan struct{} // closed when the stall ends; nil: not stalled
}

func (s *stallingStore) stall() {
	s.mu.Lock()
	s.release = make(chan struct{})
	s.mu.Unlock()
}

func (s *stallingStore) resume() {
	s.mu.Lock()
	if s.release != nil {
		close(s.release)
		s.release = nil
	}
	s.mu.Unlock()
}

func (s *stallingStore) SetStatus(ctx context.Context, c presence.Conn, st presence.Status, text string) (presence.User, error) {
	s.mu.Lock()
	release := s.release
	s.mu.Unlock()
	if release != nil {
		hang := time.NewTimer(s.hang)
		defer hang.Stop()
		select {
		case <-release:
		case <-hang.C:
			return presence.User{}, fmt.Errorf("%w: no master for the slot (test stall)", presence.ErrUnavailable)
		case <-ctx.Done():
			return presence.User{}, ctx.Err()
		}
	}
	return s.Store.SetStatus(ctx, c, st, text)
}

// TestStoreStallDoesNotCutACompliantClient: a client writing its status
// at exactly its allowed rate (MESSAGE_RATE, within MESSAGE_BURST) while
// the store stalls gets an answer to every frame (ok, or unavailable) and
// keeps its connection, whether the store's writes hang (the frames the
// client sends meanwhile wait in the socket, and are read in one go once
// the write returns: they must be judged at the rate they were sent) or
// fail at once (server failures must not spend the client's error
// budget).
func TestStoreStallDoesNotCutACompliantClient(t *testing.T) {
	for _, tc := range []struct {
		name string
		hang time.Duration
	}{
		{"writes hang", 1500 * time.Millisecond},
		{"writes fail at once", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const rate, frames, stallFor = 20, 60, 40
			store := &stallingStore{hang: tc.hang}
			g := start(t, setup{
				cfg:       func(c *config.Config) { c.MessageRate, c.MessageBurst = rate, 10 },
				wrapStore: func(s presence.Store) presence.Store { store.Store = s; return store },
			})
			c := g.dialWelcome("prober")
			store.stall()
			t.Cleanup(store.resume)

			// The prober: one status frame per 1/rate (a ticker drops ticks
			// rather than bunch them), the stall ending after stallFor.
			sent := make(chan error, 1)
			go func() {
				tick := time.NewTicker(time.Second / rate)
				defer tick.Stop()
				for i := range frames {
					<-tick.C
					if i == stallFor {
						store.resume()
					}
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					err := c.c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"status","id":%d,"status":"away","text":"%d"}`, i, i))
					cancel()
					if err != nil {
						sent <- fmt.Errorf("frame %d: %w", i, err)
						return
					}
				}
				sent <- nil
			}()

			oks, unavailable := 0, 0
			for i := range frames {
				_, b, err := c.readRaw()
				if err != nil {
					t.Fatalf("answer %d (%d ok, %d unavailable so far): %v", i, oks, unavailable, err)
				}
				var m struct {
					Type, Code string
					ID         int
				}
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatalf("answer %d: %q: %v", i, b, err)
				}
				switch {
				case m.Type == "ok" && m.ID == i:
					oks++
				case m.Type == "error" && m.Code == "unavailable" && m.ID == i:
					unavailable++
				default:
					t.Fatalf("answer %d is %s, want ok or error unavailable with id %d (%d ok, %d unavailable so far)", i, b, i, oks, unavailable)
				}
			}
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			if unavailable == 0 || oks == 0 {
				t.Fatalf("%d ok, %d unavailable: the stall did not happen as planned", oks, unavailable)
			}
			c.alive()
		})
	}
}
