// Package hub is the gateway's fan-out: which local connections watch which
// users. It watches a user in the presence store once, however many local
// connections subscribe to it, and copies each change of a watched user to
// its subscribers' send queues.
//
// The hub is sharded by user id, one lock per shard (as centrifuge's hub
// is): a Publish holds only its user's shard, so a big fan-out of one user
// never delays the events of users in other shards, and a Publish never
// waits on a store call or on a subscriber (Deliver does not block).
package hub

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/protocol"
)

// Subscriber is one local connection's send side. Deliver must not block:
// it queues the frame (bounded) or closes a slow consumer. The frame is a
// presence event frame about the one user userID; for each user, Deliver
// is called in the order of the user's versions, never concurrently.
type Subscriber interface {
	Deliver(userID string, frame []byte)
}

// numShards is the number of hub shards (a power of two).
const numShards = 64

// Hub maps watched users to local subscribers.
type Hub struct {
	store   presence.Store
	metrics *Metrics
	seed    maphash.Seed
	shards  [numShards]shard
}

// shard holds the users whose id hashes to it.
type shard struct {
	// mu guards entries and watched; it is held only for map work and
	// non-blocking Delivers, never across a store call.
	mu      sync.Mutex
	entries map[string]*entry // user id -> its local subscribers
	watched map[string]bool   // user ids the store currently watches for us

	// watchMu serialises the shard's Watch/Unwatch calls, so that the
	// decision (does anybody here want the user?) and the store call that
	// carries it out happen together and racing calls converge.
	watchMu sync.Mutex
}

type entry struct {
	subs    map[Subscriber]struct{}
	version int64 // newest version delivered, to drop stale events

	// ready is closed once the store's watch of the user is in place (or
	// failed, with err set): a subscriber reads its snapshot only after
	// that, whoever made the watch, so no change falls between the two.
	ready chan struct{}
	err   error
}

// New returns a hub on store. The store's Options.OnEvent must call
// Hub.Publish.
func New(store presence.Store, m *Metrics) *Hub {
	h := &Hub{store: store, metrics: m, seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].entries = make(map[string]*entry)
		h.shards[i].watched = make(map[string]bool)
	}
	return h
}

func (h *Hub) shard(id string) *shard {
	return &h.shards[maphash.String(h.seed, id)%numShards]
}

// Subscribe adds s to the subscribers of each user (valid, distinct ids;
// the caller bounds their number) and returns once the store watches
// every one of them, so that a snapshot read afterwards misses no change.
// On an error (a failed Watch, or ctx ending while another subscriber's
// Watch of the same user is under way) the subscriptions of this call are
// undone; a failed Watch also undoes every other subscription waiting on
// it, and each of those Subscribe calls returns the error.
func (h *Hub) Subscribe(ctx context.Context, s Subscriber, userIDs []string) error {
	type created struct {
		id string
		e  *entry
	}
	var fresh []created
	waits := make([]*entry, 0, len(userIDs))
	for _, id := range userIDs {
		sh := h.shard(id)
		sh.mu.Lock()
		e := sh.entries[id]
		if e == nil {
			e = &entry{subs: make(map[Subscriber]struct{}, 1), ready: make(chan struct{})}
			sh.entries[id] = e
			fresh = append(fresh, created{id, e})
		}
		e.subs[s] = struct{}{}
		sh.mu.Unlock()
		waits = append(waits, e)
	}
	for _, c := range fresh {
		err := h.sync(ctx, c.id)
		sh := h.shard(c.id)
		sh.mu.Lock()
		if err != nil && sh.entries[c.id] == c.e {
			// Nobody is watched for: drop every subscriber of this entry
			// (they are waiting on ready and get err).
			delete(sh.entries, c.id)
		}
		c.e.err = err
		close(c.e.ready)
		sh.mu.Unlock()
	}
	var errs []error
	for _, e := range waits {
		select {
		case <-e.ready:
			if e.err != nil {
				errs = append(errs, e.err)
			}
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
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
	for _, id := range userIDs {
		sh := h.shard(id)
		sh.mu.Lock()
		if e := sh.entries[id]; e != nil {
			delete(e.subs, s)
			if len(e.subs) == 0 {
				delete(sh.entries, id)
				gone = append(gone, id)
			}
		}
		sh.mu.Unlock()
	}
	for _, id := range gone {
		// Best effort: a failed Unwatch leaves events we drop on arrival.
		_ = h.sync(ctx, id)
	}
}

// sync makes the store's watch of id match whether anybody here wants it.
// Under the shard's watchMu the decision and the store call happen
// together, so racing Subscribe/Unsubscribe calls converge on the state
// the last one left.
func (h *Hub) sync(ctx context.Context, id string) error {
	sh := h.shard(id)
	sh.watchMu.Lock()
	defer sh.watchMu.Unlock()
	sh.mu.Lock()
	want, have := sh.entries[id] != nil, sh.watched[id]
	sh.mu.Unlock()
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
	sh.mu.Lock()
	if want {
		sh.watched[id] = true
	} else {
		delete(sh.watched, id)
	}
	sh.mu.Unlock()
	return nil
}

// Publish delivers a change of a watched user to its local subscribers,
// as one presence frame (no id) encoded once. An event not newer than one
// already delivered (events from several replicas may cross) is dropped,
// and so is version 0 (a user the store does not know, as a resync may
// read) once a versioned event was delivered: it never takes the newest
// delivered version back, which would let stale events through. It holds
// only the user's shard, and Deliver does not block.
func (h *Hub) Publish(u presence.User) {
	sh := h.shard(u.UserID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entries[u.UserID]
	if e == nil {
		return
	}
	if u.Version <= e.version && (u.Version != 0 || e.version != 0) {
		return
	}
	e.version = u.Version
	frame := protocol.EncodePresence(nil, []presence.User{u})
	for s := range e.subs {
		s.Deliver(u.UserID, frame)
	}
	h.metrics.EventsDeliveredTotal.Add(float64(len(e.subs)))
}

// Watched returns how many distinct users local connections watch.
func (h *Hub) Watched() int {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}
