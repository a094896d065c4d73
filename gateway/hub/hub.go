// Package hub is the gateway's fan-out: which local connections watch which
// users. It watches a user in the presence store once, however many local
// connections subscribe to it, and copies each change of a watched user to
// its subscribers' send queues.
package hub

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"

	"github.com/presencekit/presence-operator/gateway/metrics"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/protocol"
)

// Subscriber is one local connection's send side. Deliver must not block:
// it queues the frame (bounded) or closes a slow consumer.
type Subscriber interface {
	Deliver(frame []byte)
}

// watchStripes serialises Watch/Unwatch per user without one global lock
// around store calls (which are network round trips on Redis).
const watchStripes = 64

// Hub maps watched users to local subscribers.
type Hub struct {
	store   presence.Store
	metrics *metrics.Metrics

	mu      sync.Mutex
	entries map[string]*entry // user id -> its local subscribers
	watched map[string]bool   // user ids the store currently watches for us

	seed    maphash.Seed
	stripes [watchStripes]sync.Mutex
}

type entry struct {
	subs    map[Subscriber]struct{}
	version int64 // newest version delivered, to drop stale events
}

// New returns a hub on store. The store's Options.OnEvent must call
// Hub.Publish.
func New(store presence.Store, m *metrics.Metrics) *Hub {
	return &Hub{
		store:   store,
		metrics: m,
		entries: make(map[string]*entry),
		watched: make(map[string]bool),
		seed:    maphash.MakeSeed(),
	}
}

// Subscribe adds s to the subscribers of each user (valid, distinct ids;
// the caller bounds their number) and makes sure the store watches them.
// On a store error the subscriptions of this call are undone.
func (h *Hub) Subscribe(ctx context.Context, s Subscriber, userIDs []string) error {
	var fresh []string
	h.mu.Lock()
	for _, id := range userIDs {
		e := h.entries[id]
		if e == nil {
			e = &entry{subs: make(map[Subscriber]struct{}, 1)}
			h.entries[id] = e
			fresh = append(fresh, id)
		}
		e.subs[s] = struct{}{}
	}
	h.mu.Unlock()
	var errs []error
	for _, id := range fresh {
		errs = append(errs, h.sync(ctx, id))
	}
	if err := errors.Join(errs...); err != nil {
		h.Unsubscribe(context.WithoutCancel(ctx), s, userIDs)
		return err
	}
	return nil
}

// Unsubscribe removes s from the subscribers of each user, and stops
// watching the users nobody here watches any more.
func (h *Hub) Unsubscribe(ctx context.Context, s Subscriber, userIDs []string) {
	var gone []string
	h.mu.Lock()
	for _, id := range userIDs {
		e := h.entries[id]
		if e == nil {
			continue
		}
		delete(e.subs, s)
		if len(e.subs) == 0 {
			delete(h.entries, id)
			gone = append(gone, id)
		}
	}
	h.mu.Unlock()
	for _, id := range gone {
		// Best effort: a failed Unwatch leaves events we drop on arrival.
		_ = h.sync(ctx, id)
	}
}

// sync makes the store's watch of id match whether anybody here wants it.
// Under the user's stripe lock the decision and the store call happen
// together, so racing Subscribe/Unsubscribe calls converge on the state
// the last one left.
func (h *Hub) sync(ctx context.Context, id string) error {
	st := &h.stripes[maphash.String(h.seed, id)%watchStripes]
	st.Lock()
	defer st.Unlock()
	h.mu.Lock()
	want, have := h.entries[id] != nil, h.watched[id]
	h.mu.Unlock()
	switch {
	case want && !have:
		if err := h.store.Watch(ctx, id); err != nil {
			return err
		}
	case !want && have:
		if err := h.store.Unwatch(ctx, id); err != nil {
			return err
		}
	default:
		return nil
	}
	h.mu.Lock()
	if want {
		h.watched[id] = true
	} else {
		delete(h.watched, id)
	}
	h.mu.Unlock()
	return nil
}

// Publish delivers a change of a watched user to its local subscribers,
// as one presence frame (no id) encoded once. An event older than one
// already delivered (events from several replicas may cross) is dropped.
func (h *Hub) Publish(u presence.User) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entries[u.UserID]
	if e == nil {
		return
	}
	if u.Version != 0 && u.Version <= e.version {
		return
	}
	e.version = u.Version
	frame := protocol.EncodePresence(nil, []presence.User{u})
	for s := range e.subs {
		s.Deliver(frame)
	}
	h.metrics.EventsDeliveredTotal.Add(float64(len(e.subs)))
}

// Watched returns how many distinct users local connections watch.
func (h *Hub) Watched() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.entries)
}
