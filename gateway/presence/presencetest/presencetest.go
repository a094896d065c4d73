// Package presencetest is the conformance suite every presence.Store passes:
// the in-memory store and the Redis Cluster store run the same tests, so
// the gateway behaves the same on either.
//
// Call it from a test of the store's package:
//
//	func TestConformance(t *testing.T) {
//		presencetest.Run(t, func(t *testing.T, opts presence.Options) presence.Store {
//			s, err := memstore.New(opts)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		}, presencetest.Config{})
//	}
//
// The factory is called once per subtest (several times in the multi-replica
// subtests: each call is one more replica on the same backend). It must
// pass opts through unchanged (OnEvent, Now, TTL, Heartbeat, OfflineGrace,
// Metrics are the suite's) and register the cleanup of its own resources
// (a client, a key prefix) with t.Cleanup. The suite itself starts Run where
// a subtest needs it and calls Close on every store at the end of the
// subtest, so the factory must not. User ids are unique per subtest (a
// random prefix), so a shared backend needs no flushing between subtests.
//
// Time. Options.Now is a clock the suite controls: real time plus an offset.
// With Config.RealTime false (the in-memory store), a subtest that needs
// time to pass moves the clock forward, and the store must measure every
// TTL and grace with Options.Now. With Config.RealTime true (a store whose
// TTLs are measured by Redis itself, which cannot see a fake clock), the
// clock is never moved: the suite uses short real durations (TTL 1s,
// heartbeat 200ms, grace 1s) and waits for time to pass by polling the
// expected state with a deadline. Either way no subtest sleeps as its only
// synchronisation, and the subtest that checks refreshes (RunKeepsAlive)
// always runs on real time.
package presencetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/internal/poll"
)

// Factory makes one store (one replica) with the suite's options.
type Factory func(t *testing.T, opts presence.Options) presence.Store

// Config says what the store under test can do.
type Config struct {
	// RealTime: the store measures TTLs and graces on real time (Redis
	// key expiry), not on Options.Now. The suite then waits instead of
	// moving the clock. See the package comment.
	RealTime bool
	// MultiReplica: the stores one subtest makes share their data, like
	// replicas on one Redis Cluster. Enables the cross-replica subtests
	// (visibility, events, a crashed replica's users going offline,
	// Close removing presence).
	MultiReplica bool
}

// Run runs every conformance subtest against the stores newStore makes.
func Run(t *testing.T, newStore Factory, cfg Config) {
	tests := []struct {
		name  string
		multi bool
		fn    func(*testing.T, *harness)
	}{
		{"NeverSeenUserIsOffline", false, testNeverSeen},
		{"ConnectMakesOnline", false, testConnect},
		{"SeveralConnectionsPerUser", false, testSeveralConnections},
		{"DisconnectUnknownConnectionIsHarmless", false, testDisconnectUnknown},
		{"GetKeepsOrder", false, testGetOrder},
		{"SetStatus", false, testSetStatus},
		{"StatusResetsAfterOffline", false, testStatusReset},
		{"LastSeen", false, testLastSeen},
		{"LastSeenDoesNotGoBackWithGrace", false, testLastSeenWithGrace},
		{"StallRecovery", false, testStallRecovery},
		{"EventsOnlyForWatchedUsers", false, testEventsOnlyWatched},
		{"EventSequenceAndVersions", false, testEventSequence},
		{"WatchIsIdempotent", false, testWatchIdempotent},
		{"ReadsHonourTTLWithoutRun", false, testTTLOnRead},
		{"RunKeepsAlive", false, testRunKeepsAlive},
		{"OfflineGrace", false, testOfflineGrace},
		{"ConcurrentConnections", false, testConcurrent},
		{"Ready", false, testReady},
		{"Invisible", false, testInvisible},
		{"InvisibleWithGrace", false, testInvisibleGrace},
		{"InvisibleKeptAliveByRun", false, testInvisibleKeptAlive},
		{"CrossReplicaVisibilityAndEvents", true, testCrossReplica},
		{"CrashedReplicaUsersGoOffline", true, testCrashedReplica},
		{"StalledReplicaComesBack", true, testStalledReplicaComesBack},
		{"CloseRemovesPresence", true, testCloseRemoves},
		{"InvisibleAcrossReplicas", true, testInvisibleCrossReplica},
		{"InvisibleUserOfCrashedReplica", true, testInvisibleCrashedReplica},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.multi && !cfg.MultiReplica {
				t.Skip("single-replica store: Config.MultiReplica is false")
			}
			tc.fn(t, newHarness(t, newStore, cfg))
		})
	}
}

// Clock is the suite's Options.Now: real time plus an offset that
// fake-clock subtests move forward.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// harness is one subtest's world: the clock, the event recorders, the
// durations and the stores.
type harness struct {
	t        *testing.T
	cfg      Config
	factory  Factory
	clock    *Clock
	prefix   string
	ttl      time.Duration
	hb       time.Duration
	grace    time.Duration
	deadline time.Duration // how long a change may take to show
}

func newHarness(t *testing.T, f Factory, cfg Config) *harness {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	h := &harness{
		t: t, cfg: cfg, factory: f, clock: &Clock{},
		prefix:   "pt" + hex.EncodeToString(b) + "-",
		ttl:      time.Minute,
		hb:       50 * time.Millisecond,
		grace:    10 * time.Second,
		deadline: 5 * time.Second,
	}
	if cfg.RealTime {
		h.ttl, h.hb, h.grace = time.Second, 200*time.Millisecond, time.Second
	}
	return h
}

// user returns a user id unique to this subtest.
func (h *harness) user(name string) string { return h.prefix + name }

// conn returns a connection of user with a unique id.
func (h *harness) conn(userID, name string) presence.Conn {
	return presence.Conn{UserID: userID, ID: h.prefix + userID + "-" + name}
}

// replica is one store with the events it received.
type replica struct {
	presence.Store
	rec    *Recorder
	closed bool               // Close was called by the subtest itself
	cancel context.CancelFunc // stops Run, if started
	done   chan struct{}
}

// storeOpts tunes one store's options.
type storeOpts struct {
	grace    time.Duration
	realTime bool // Now = time.Now and real short durations, whatever Config says
}

// newStore makes a replica, closing it at the end of the subtest.
func (h *harness) newStore(so storeOpts) *replica {
	h.t.Helper()
	rec := &Recorder{}
	opts := presence.Options{
		TTL:          h.ttl,
		Heartbeat:    h.hb,
		OfflineGrace: so.grace,
		OnEvent:      rec.Add,
		Now:          h.clock.Now,
		Metrics:      presence.NewMetrics(prometheus.NewRegistry()),
	}
	if so.realTime {
		opts.TTL, opts.Heartbeat = 600*time.Millisecond, 100*time.Millisecond
	}
	s := h.factory(h.t, opts)
	r := &replica{Store: s, rec: rec}
	h.t.Cleanup(func() {
		r.stop()
		if r.closed {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			h.t.Errorf("Close: %v", err)
		}
	})
	return r
}

// start runs the store's Run until the subtest ends or stop is called.
func (r *replica) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("Run: %v", err)
		}
	}()
}

// stop ends Run and waits for it to return (at most 10s).
func (r *replica) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
	}
	r.cancel = nil
}

// pass lets d elapse: moves the clock on a fake-clock store; on a real-time
// store it does nothing and the caller polls with poll.Eventually.
func (h *harness) pass(d time.Duration) {
	if !h.cfg.RealTime {
		h.clock.Advance(d)
	}
}

// within is how long to poll for a change due after d: d (real time only)
// plus the usual deadline.
func (h *harness) within(d time.Duration) time.Duration {
	if h.cfg.RealTime {
		return d + h.deadline
	}
	return h.deadline
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

func (h *harness) connect(s presence.Store, c presence.Conn) presence.User {
	h.t.Helper()
	u, err := s.Connect(h.ctx(), c)
	if err != nil {
		h.t.Fatalf("Connect(%+v): %v", c, err)
	}
	return u
}

func (h *harness) disconnect(s presence.Store, c presence.Conn) presence.User {
	h.t.Helper()
	u, err := s.Disconnect(h.ctx(), c)
	if err != nil {
		h.t.Fatalf("Disconnect(%+v): %v", c, err)
	}
	return u
}

func (h *harness) get(s presence.Store, id string) presence.User {
	h.t.Helper()
	us, err := s.Get(h.ctx(), []string{id})
	if err != nil {
		h.t.Fatalf("Get(%q): %v", id, err)
	}
	if len(us) != 1 {
		h.t.Fatalf("Get(%q) returned %d users, want 1", id, len(us))
	}
	return us[0]
}

func (h *harness) watch(s presence.Store, id string) {
	h.t.Helper()
	if err := s.Watch(h.ctx(), id); err != nil {
		h.t.Fatalf("Watch(%q): %v", id, err)
	}
}

// Recorder collects the events a store's OnEvent received; pass its Add as OnEvent.
type Recorder struct {
	mu     sync.Mutex
	events []presence.User
}

// Add records u; it is safe to call from any goroutine.
func (r *Recorder) Add(u presence.User) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, u)
}

// Of returns the events of one user, in arrival order.
func (r *Recorder) Of(id string) []presence.User {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []presence.User
	for _, e := range r.events {
		if e.UserID == id {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits until an event of id satisfying match has arrived.
func (h *harness) waitEvent(r *Recorder, id, what string, match func(presence.User) bool) presence.User {
	h.t.Helper()
	var found presence.User
	poll.Eventually(h.t, h.deadline, "event "+what+" for "+id, func() (bool, string) {
		evs := r.Of(id)
		for _, e := range evs {
			if match(e) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", evs)
	})
	return found
}

func isOffline(u presence.User) bool {
	return !u.Online && u.Status == presence.StatusOffline && u.Connections == 0
}

func checkOffline(t *testing.T, u presence.User) {
	t.Helper()
	if !isOffline(u) {
		t.Fatalf("user %s: got %+v, want offline (online false, status offline, 0 connections)", u.UserID, u)
	}
}

func checkOnline(t *testing.T, u presence.User, conns int) {
	t.Helper()
	if !u.Online || u.Status == presence.StatusOffline || u.Connections != conns {
		t.Fatalf("user %s: got %+v, want online with %d connections", u.UserID, u, conns)
	}
}
