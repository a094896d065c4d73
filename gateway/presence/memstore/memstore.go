// Package memstore is the embedded in-memory presence.Store: one replica,
// no Redis, for development and the quick start. It has the full semantics
// of the interface (several connections per user, TTL honoured on every
// read, events to watchers, lastSeen, per-user version, offline grace) and
// passes the same conformance suite as the Redis Cluster store.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/presencekit/presence-operator/gateway/presence"
)

// How long, and for how many users, an offline and unwatched user's
// lastSeen and version are remembered before Run forgets them (its reads
// then show lastSeen 0), so that the map keyed by user ids stays bounded
// whatever ids clients connect with.
const (
	retention     = 24 * time.Hour
	maxRemembered = 100_000
)

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("memstore: store is closed")

// Store is the in-memory presence.Store.
//
// Every operation runs under one mutex. Expiry and the offline grace are
// applied lazily by settle on every access (so reads never report an expired
// connection, whatever Run did) and eagerly by Run's sweep (so watchers get
// their events without anybody reading). Events are computed under mu and
// delivered under emitMu, taken before mu is released: handlers run outside
// the data lock, yet in the order the changes happened.
//
// A connection has two records: open (Connect until Disconnect: the socket
// exists) and conns (its last refresh: what reads count). They differ only
// after a stall of the process longer than the TTL: the connection expired
// although its socket stayed open. The heartbeat then re-registers it, so
// the user is announced online again within one heartbeat.
type Store struct {
	opts presence.Options
	now  func() time.Time

	mu      sync.Mutex
	users   map[string]*user
	watched map[string]struct{}
	closed  bool
	// beatAt is the clock's time of the last heartbeat (zero until Run
	// starts). Ready fails once it is a TTL old: connections are then no
	// longer kept alive.
	beatAt time.Time

	emitMu sync.Mutex
}

// user is one user's state. conns maps a connection id to its last
// refresh; open holds the connections whose socket is open (see Store).
type user struct {
	conns  map[string]time.Time
	open   map[string]struct{}
	status presence.Status // set while online; StatusOnline by default
	text   string
	// hiddenAt is when the user went invisible (zero while visible): it
	// then shows offline, with this lastSeen, until it sets another status
	// or really goes offline (which forgets it).
	hiddenAt time.Time
	version  int64
	pub      visible // what the last version showed

	lastSeen   time.Time // when the user went offline (valid while offline)
	graceStart time.Time // last disconnect, while an offline is pending: the lastSeen shown
	graceUntil time.Time // non-zero while an offline is pending
}

// visible is the part of a user that clients see change (lastSeen aside).
type visible struct {
	online      bool
	status      presence.Status
	text        string
	connections int
}

var _ presence.Store = (*Store)(nil)

// New returns an empty store. opts.OnEvent and opts.Metrics are required.
func New(opts presence.Options) (*Store, error) {
	if opts.OnEvent == nil {
		return nil, errors.New("memstore: Options.OnEvent is required")
	}
	if opts.Metrics == nil {
		return nil, errors.New("memstore: Options.Metrics is required")
	}
	if opts.TTL <= 0 || opts.Heartbeat <= 0 {
		return nil, fmt.Errorf("memstore: TTL (%s) and Heartbeat (%s) must be positive", opts.TTL, opts.Heartbeat)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{
		opts:    opts,
		now:     now,
		users:   make(map[string]*user),
		watched: make(map[string]struct{}),
	}, nil
}

// Connect records an open connection.
func (s *Store) Connect(_ context.Context, c presence.Conn) (presence.User, error) {
	return s.update(c.UserID, func(u *user, now time.Time) error {
		u.conns[c.ID] = now
		u.open[c.ID] = struct{}{}
		u.graceStart, u.graceUntil = time.Time{}, time.Time{}
		return nil
	})
}

// Disconnect removes a connection; removing an unknown one changes nothing.
func (s *Store) Disconnect(_ context.Context, c presence.Conn) (presence.User, error) {
	return s.update(c.UserID, func(u *user, now time.Time) error {
		delete(u.open, c.ID)
		if _, ok := u.conns[c.ID]; !ok {
			return nil
		}
		delete(u.conns, c.ID)
		if len(u.conns) == 0 && s.opts.OfflineGrace > 0 {
			u.graceStart, u.graceUntil = now, now.Add(s.opts.OfflineGrace)
		} else if len(u.conns) == 0 {
			u.lastSeen = now
		}
		return nil
	})
}

// SetStatus sets the user's status and text. The connection must be live.
func (s *Store) SetStatus(_ context.Context, c presence.Conn, status presence.Status, text string) (presence.User, error) {
	if !status.Settable() {
		return presence.User{}, fmt.Errorf("memstore: status %q cannot be set", status)
	}
	return s.update(c.UserID, func(u *user, now time.Time) error {
		if _, ok := u.conns[c.ID]; !ok {
			return fmt.Errorf("memstore: connection %q of user %q is not connected", c.ID, c.UserID)
		}
		if status == presence.StatusInvisible {
			if u.hiddenAt.IsZero() {
				u.hiddenAt = now // the status and text shown before are kept for nobody
			}
			return nil
		}
		u.hiddenAt = time.Time{}
		u.status, u.text = status, text
		return nil
	})
}

// Get returns the users in the order asked, offline ones included.
func (s *Store) Get(_ context.Context, userIDs []string) ([]presence.User, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	now := s.now()
	var events []presence.User
	out := make([]presence.User, len(userIDs))
	for i, id := range userIDs {
		u, ok := s.users[id]
		if !ok {
			out[i] = presence.User{UserID: id, Status: presence.StatusOffline}
			continue
		}
		events = s.settle(id, u, now, events)
		out[i] = s.view(id, u, now)
	}
	s.emitUnlock(events)
	return out, nil
}

// Watch makes OnEvent receive the user's changes. It is idempotent.
func (s *Store) Watch(_ context.Context, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.watched[userID] = struct{}{}
	s.opts.Metrics.WatchedUsers.Set(float64(len(s.watched)))
	return nil
}

// Unwatch stops the user's events, however many times Watch was called.
func (s *Store) Unwatch(_ context.Context, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	delete(s.watched, userID)
	s.opts.Metrics.WatchedUsers.Set(float64(len(s.watched)))
	return nil
}

// Run refreshes every connection once per heartbeat (they are all local)
// and sweeps expiries and pending offlines, until ctx ends. The sweep runs
// more often than the heartbeat when an offline grace is set, so that the
// offline event comes close to the grace's end. The heartbeat also
// re-registers open connections that expired during a stall.
func (s *Store) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.beatAt.IsZero() {
		s.beatAt = s.now()
	}
	s.mu.Unlock()
	hb := time.NewTicker(s.opts.Heartbeat)
	defer hb.Stop()
	sweepEvery := s.opts.Heartbeat
	if g := s.opts.OfflineGrace / 4; g > 0 && g < sweepEvery {
		sweepEvery = max(g, 10*time.Millisecond)
	}
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hb.C:
			s.tick(true)
		case <-sweep.C:
			s.tick(false)
		}
	}
}

// tick settles every user (emitting due events) and forgets users that have
// been offline and unwatched for longer than the retention. When refresh is
// set (the heartbeat), it first refreshes every open connection, which
// re-registers one that expired during a stall of the process: its user is
// online again, and the event says so.
func (s *Store) tick(refresh bool) {
	start := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	now := s.now()
	var events []presence.User
	if refresh {
		s.beatAt = now
	}
	for id, u := range s.users {
		if refresh && len(u.open) > 0 {
			for cid := range u.open {
				u.conns[cid] = now
			}
			u.graceStart, u.graceUntil = time.Time{}, time.Time{} // as a Connect would
		}
		events = s.settle(id, u, now, events)
		_, watched := s.watched[id]
		if !u.pub.online && !watched && len(u.open) == 0 && now.Sub(u.lastSeen) > retention {
			delete(s.users, id)
		}
	}
	for id, u := range s.users {
		if len(s.users) <= maxRemembered {
			break
		}
		if _, watched := s.watched[id]; !u.pub.online && !watched && len(u.open) == 0 {
			delete(s.users, id) // map order: an arbitrary offline user
		}
	}
	if refresh {
		s.opts.Metrics.HeartbeatBatchDuration.Observe(time.Since(start).Seconds())
	}
	s.emitUnlock(events)
}

// Ready reports whether the store serves calls and keeps its connections
// alive: once Run has started, a heartbeat a TTL overdue (the process was
// stalled, or Run ended) means open connections may have expired, and Ready
// fails until the next heartbeat has re-registered them.
func (s *Store) Ready(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.beatAt.IsZero() {
		if late := s.now().Sub(s.beatAt); late >= s.opts.TTL {
			return fmt.Errorf("%w: memstore: no heartbeat for %s (TTL %s): connections are not kept alive",
				presence.ErrUnavailable, late.Round(time.Millisecond), s.opts.TTL)
		}
	}
	return nil
}

// Close removes every connection (no grace: the process is going away),
// publishing the offline events, and refuses later calls.
func (s *Store) Close(context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	now := s.now()
	var events []presence.User
	for id, u := range s.users {
		if len(u.conns) == 0 && u.graceUntil.IsZero() {
			continue
		}
		clear(u.conns)
		clear(u.open)
		u.graceStart, u.graceUntil = time.Time{}, time.Time{}
		u.lastSeen = now
		events = s.settle(id, u, now, events)
	}
	s.closed = true
	s.emitUnlock(events)
	return nil
}

// update applies fn to the user under the lock, settles it and returns it.
func (s *Store) update(id string, fn func(*user, time.Time) error) (presence.User, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return presence.User{}, ErrClosed
	}
	now := s.now()
	u, ok := s.users[id]
	if !ok {
		u = &user{
			conns:  make(map[string]time.Time, 1),
			open:   make(map[string]struct{}, 1),
			status: presence.StatusOnline,
			pub:    visible{status: presence.StatusOffline},
		}
		s.users[id] = u
	}
	// Expire first, so that fn sees only live connections.
	events := s.settle(id, u, now, nil)
	if err := fn(u, now); err != nil {
		s.emitUnlock(events)
		return presence.User{}, err
	}
	events = s.settle(id, u, now, events)
	out := s.view(id, u, now)
	s.emitUnlock(events)
	return out, nil
}

// settle drops expired connections, resolves a due offline grace, and, when
// what clients see changed since the last version, bumps the version and
// appends the event (if the user is watched). Called with mu held.
func (s *Store) settle(id string, u *user, now time.Time, events []presence.User) []presence.User {
	var expiredAt time.Time // the last refresh of an expired connection: it was online then
	for cid, refreshed := range u.conns {
		if end := refreshed.Add(s.opts.TTL); !now.Before(end) {
			delete(u.conns, cid)
			if refreshed.After(expiredAt) {
				expiredAt = refreshed
			}
		}
	}
	if len(u.conns) == 0 {
		switch {
		case !u.graceUntil.IsZero() && !now.Before(u.graceUntil):
			u.lastSeen = u.graceStart
			u.graceStart, u.graceUntil = time.Time{}, time.Time{}
		case !expiredAt.IsZero() && u.graceUntil.IsZero():
			u.lastSeen = expiredAt
		}
		if u.graceUntil.IsZero() && !u.hiddenAt.IsZero() {
			// Really offline while invisible: watchers saw it go offline
			// when it hid, and its lastSeen stays that moment.
			u.lastSeen, u.hiddenAt = u.hiddenAt, time.Time{}
		}
	}
	v := s.visibleNow(u)
	if !v.online {
		// A new session starts as "online" with no text.
		u.status, u.text = presence.StatusOnline, ""
	}
	if v == u.pub {
		return events
	}
	switch {
	case v.online && !u.pub.online:
		s.opts.Metrics.TransitionsTotal.WithLabelValues("online").Inc()
	case !v.online && u.pub.online:
		s.opts.Metrics.TransitionsTotal.WithLabelValues("offline").Inc()
	case v.status != u.pub.status || v.text != u.pub.text:
		s.opts.Metrics.TransitionsTotal.WithLabelValues("status").Inc()
	}
	// At least the clock in ms, as in the Redis store: a user forgotten
	// after the retention (its version with it) comes back with a higher
	// version than any a client kept.
	u.version = max(u.version+1, now.UnixMilli())
	u.pub = v
	s.opts.Metrics.EventsPublishedTotal.Inc()
	if _, ok := s.watched[id]; ok {
		events = append(events, s.view(id, u, now))
	}
	return events
}

// visibleNow is what clients see of a settled user.
func (s *Store) visibleNow(u *user) visible {
	if len(u.conns) == 0 && u.graceUntil.IsZero() || !u.hiddenAt.IsZero() {
		return visible{status: presence.StatusOffline}
	}
	return visible{online: true, status: u.status, text: u.text, connections: len(u.conns)}
}

// view renders a settled user.
func (s *Store) view(id string, u *user, now time.Time) presence.User {
	v := s.visibleNow(u)
	out := presence.User{
		UserID: id, Online: v.online, Status: v.status, Text: v.text,
		Connections: v.connections, Version: u.version,
	}
	switch {
	case v.online && len(u.conns) == 0:
		out.LastSeen = u.graceStart.UnixMilli() // within the offline grace
	case v.online:
		out.LastSeen = now.UnixMilli()
	case !u.hiddenAt.IsZero():
		out.LastSeen = u.hiddenAt.UnixMilli()
	case !u.lastSeen.IsZero():
		out.LastSeen = u.lastSeen.UnixMilli()
	}
	return out
}

// emitUnlock releases mu and delivers events in order, outside the data
// lock but under emitMu, so concurrent changes reach OnEvent in the order
// they were made.
func (s *Store) emitUnlock(events []presence.User) {
	if len(events) == 0 {
		s.mu.Unlock()
		return
	}
	s.emitMu.Lock()
	s.mu.Unlock()
	defer s.emitMu.Unlock()
	for _, e := range events {
		s.opts.OnEvent(e)
	}
}
