package presencetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/internal/poll"
)

func testNeverSeen(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	u := h.get(s, h.user("ghost"))
	checkOffline(t, u)
	if u.UserID != h.user("ghost") || u.LastSeen != 0 || u.Text != "" {
		t.Fatalf("never-seen user: got %+v, want userId set, lastSeen 0, empty text", u)
	}
}

func testConnect(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	id := h.user("alice")
	before := h.clock.Now().UnixMilli()
	u := h.connect(s, h.conn(id, "c1"))
	checkOnline(t, u, 1)
	if u.Status != presence.StatusOnline || u.Version <= 0 || u.LastSeen < before {
		t.Fatalf("Connect returned %+v, want status online, version > 0, lastSeen >= %d", u, before)
	}
	g := h.get(s, id)
	checkOnline(t, g, 1)
	if g.Version != u.Version {
		t.Fatalf("Get version %d, Connect returned %d: no change happened between them", g.Version, u.Version)
	}
}

func testSeveralConnections(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	id := h.user("bob")
	c1, c2 := h.conn(id, "tab1"), h.conn(id, "tab2")
	h.connect(s, c1)
	u := h.connect(s, c2)
	checkOnline(t, u, 2)
	checkOnline(t, h.get(s, id), 2)
	u = h.disconnect(s, c1)
	checkOnline(t, u, 1)
	checkOnline(t, h.get(s, id), 1)
	u = h.disconnect(s, c2)
	checkOffline(t, u)
	checkOffline(t, h.get(s, id))
}

func testDisconnectUnknown(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	id := h.user("carol")
	h.disconnect(s, h.conn(id, "never"))
	checkOffline(t, h.get(s, id))
	u := h.connect(s, h.conn(id, "c1"))
	after := h.disconnect(s, h.conn(id, "other"))
	checkOnline(t, after, 1)
	if after.Version != u.Version {
		t.Fatalf("disconnecting an unknown connection changed the version from %d to %d", u.Version, after.Version)
	}
}

func testGetOrder(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	ids := []string{h.user("z"), h.user("a"), h.user("m"), h.user("b")}
	h.connect(s, h.conn(ids[1], "c"))
	h.connect(s, h.conn(ids[3], "c"))
	us, err := s.Get(h.ctx(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != len(ids) {
		t.Fatalf("Get returned %d users, want %d", len(us), len(ids))
	}
	for i, u := range us {
		if u.UserID != ids[i] {
			t.Fatalf("Get result %d is %q, want %q (the order asked)", i, u.UserID, ids[i])
		}
		if want := i == 1 || i == 3; u.Online != want {
			t.Fatalf("user %q online=%v, want %v", u.UserID, u.Online, want)
		}
	}
	if us, err := s.Get(h.ctx(), nil); err != nil || len(us) != 0 {
		t.Fatalf("Get(nil) = %v, %v; want no users, no error", us, err)
	}
}

func testSetStatus(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	id := h.user("dave")
	c := h.conn(id, "c1")
	v0 := h.connect(s, c).Version
	u, err := s.SetStatus(h.ctx(), c, presence.StatusAway, "lunch")
	if err != nil {
		t.Fatal(err)
	}
	if !u.Online || u.Status != presence.StatusAway || u.Text != "lunch" || u.Version <= v0 {
		t.Fatalf("SetStatus returned %+v, want online, away, text lunch, version > %d", u, v0)
	}
	g := h.get(s, id)
	if g.Status != presence.StatusAway || g.Text != "lunch" || g.Version != u.Version {
		t.Fatalf("Get after SetStatus: %+v, want away/lunch/version %d", g, u.Version)
	}
	// The status is user-wide: a second connection shows it too.
	u2 := h.connect(s, h.conn(id, "c2"))
	if u2.Status != presence.StatusAway || u2.Connections != 2 {
		t.Fatalf("second connection: %+v, want away with 2 connections", u2)
	}
	u3, err := s.SetStatus(h.ctx(), c, presence.StatusBusy, "")
	if err != nil {
		t.Fatal(err)
	}
	if u3.Status != presence.StatusBusy || u3.Text != "" || u3.Version <= u2.Version {
		t.Fatalf("SetStatus busy: %+v", u3)
	}
}

func testStatusReset(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	id := h.user("erin")
	c := h.conn(id, "c1")
	h.connect(s, c)
	if _, err := s.SetStatus(h.ctx(), c, presence.StatusBusy, "call"); err != nil {
		t.Fatal(err)
	}
	off := h.disconnect(s, c)
	checkOffline(t, off)
	if off.Text != "" {
		t.Fatalf("offline user shows text %q, want none", off.Text)
	}
	u := h.connect(s, h.conn(id, "c2"))
	if u.Status != presence.StatusOnline || u.Text != "" || u.Version <= off.Version {
		t.Fatalf("reconnect after offline: %+v, want status online, no text, version > %d", u, off.Version)
	}
}

func testLastSeen(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	id := h.user("frank")
	c := h.conn(id, "c1")
	t0 := h.clock.Now().UnixMilli()
	on := h.connect(s, c)
	if on.LastSeen < t0 || on.LastSeen > h.clock.Now().UnixMilli() {
		t.Fatalf("online user lastSeen %d, want now (between %d and %d)", on.LastSeen, t0, h.clock.Now().UnixMilli())
	}
	off := h.disconnect(s, c)
	t1 := h.clock.Now().UnixMilli()
	if off.LastSeen < t0 || off.LastSeen > t1 {
		t.Fatalf("after disconnect lastSeen %d, want the disconnect time (between %d and %d)", off.LastSeen, t0, t1)
	}
	h.pass(5 * time.Second)
	if g := h.get(s, id); g.LastSeen != off.LastSeen {
		t.Fatalf("lastSeen of an offline user moved from %d to %d", off.LastSeen, g.LastSeen)
	}
}

func testEventsOnlyWatched(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	watched, other := h.user("w"), h.user("nw")
	h.watch(s, watched)
	h.connect(s, h.conn(other, "c"))
	h.connect(s, h.conn(watched, "c"))
	h.waitEvent(s.rec, watched, "online", func(u presence.User) bool { return u.Online })
	// The watched user's event arrived after the other user's change was
	// made, so had it been delivered it would be there now.
	if evs := s.rec.Of(other); len(evs) != 0 {
		t.Fatalf("unwatched user %s produced events %+v", other, evs)
	}
	if err := s.Unwatch(h.ctx(), watched); err != nil {
		t.Fatal(err)
	}
	n := len(s.rec.Of(watched))
	h.disconnect(s, h.conn(watched, "c"))
	// A marker change on a watched user bounds the wait for a stray event.
	marker := h.user("marker")
	h.watch(s, marker)
	h.connect(s, h.conn(marker, "c"))
	h.waitEvent(s.rec, marker, "online", func(u presence.User) bool { return u.Online })
	if evs := s.rec.Of(watched); len(evs) != n {
		t.Fatalf("events after Unwatch: %+v", evs[n:])
	}
}

func testEventSequence(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	id := h.user("gina")
	h.watch(s, id)
	c1, c2 := h.conn(id, "c1"), h.conn(id, "c2")
	h.connect(s, c1)
	h.connect(s, c2)
	if _, err := s.SetStatus(h.ctx(), c1, presence.StatusAway, "brb"); err != nil {
		t.Fatal(err)
	}
	h.disconnect(s, c1)
	final := h.disconnect(s, c2)
	checkOffline(t, final)
	last := h.waitEvent(s.rec, id, "offline", isOffline)
	if last.Version != final.Version {
		t.Fatalf("offline event version %d, Disconnect returned %d", last.Version, final.Version)
	}
	evs := s.rec.Of(id)
	want := []struct {
		online bool
		status presence.Status
		conns  int
	}{
		{true, presence.StatusOnline, 1},
		{true, presence.StatusOnline, 2},
		{true, presence.StatusAway, 2},
		{true, presence.StatusAway, 1},
		{false, presence.StatusOffline, 0},
	}
	if len(evs) != len(want) {
		t.Fatalf("got %d events %+v, want %d (one per change)", len(evs), evs, len(want))
	}
	for i, e := range evs {
		w := want[i]
		if e.Online != w.online || e.Status != w.status || e.Connections != w.conns {
			t.Fatalf("event %d: %+v, want online=%v status=%s connections=%d", i, e, w.online, w.status, w.conns)
		}
		if i > 0 && e.Version <= evs[i-1].Version {
			t.Fatalf("event %d version %d not above the previous %d", i, e.Version, evs[i-1].Version)
		}
	}
	if evs[2].Text != "brb" {
		t.Fatalf("status event text %q, want brb", evs[2].Text)
	}
}

func testWatchIdempotent(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	id := h.user("hank")
	h.watch(s, id)
	h.watch(s, id)
	h.connect(s, h.conn(id, "c"))
	h.waitEvent(s.rec, id, "online", func(u presence.User) bool { return u.Online })
	marker := h.user("marker")
	h.watch(s, marker)
	h.connect(s, h.conn(marker, "c"))
	h.waitEvent(s.rec, marker, "online", func(u presence.User) bool { return u.Online })
	if evs := s.rec.Of(id); len(evs) != 1 {
		t.Fatalf("watched twice: got %d events %+v, want exactly one", len(evs), evs)
	}
	if err := s.Unwatch(h.ctx(), id); err != nil {
		t.Fatal(err)
	}
	h.disconnect(s, h.conn(id, "c"))
	h.disconnect(s, h.conn(marker, "c"))
	h.waitEvent(s.rec, marker, "offline", isOffline)
	if evs := s.rec.Of(id); len(evs) != 1 {
		t.Fatalf("one Unwatch after two Watch calls must stop events; got %+v", evs)
	}
}

// testTTLOnRead: with no Run (no refresh, no cleanup), a connection older
// than the TTL is not reported, by every read.
func testTTLOnRead(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	id, other := h.user("ivan"), h.user("judy")
	h.connect(s, h.conn(id, "c1"))
	h.connect(s, h.conn(id, "c2"))
	h.pass(h.ttl / 2)
	h.connect(s, h.conn(other, "c1"))
	h.pass(h.ttl/2 + time.Second)
	poll.Eventually(h.t, h.within(h.ttl), id+" offline once its connections are older than the TTL", func() (bool, string) {
		u := h.get(s, id)
		return isOffline(u), fmt.Sprintf("%+v", u)
	})
	if !h.cfg.RealTime {
		// On the fake clock, the second user's connection is TTL/2+1s old.
		checkOnline(t, h.get(s, other), 1)
	}
	poll.Eventually(h.t, h.within(h.ttl), other+" offline", func() (bool, string) {
		if !h.cfg.RealTime {
			h.clock.Advance(h.ttl)
		}
		u := h.get(s, other)
		return isOffline(u), fmt.Sprintf("%+v", u)
	})
	// An expired user can connect again and is online.
	checkOnline(t, h.connect(s, h.conn(id, "c3")), 1)
}

// testRunKeepsAlive: on real time, Run refreshes connections so that they
// outlive several TTLs.
func testRunKeepsAlive(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{realTime: true})
	s.start(t)
	id := h.user("kim")
	h.connect(s, h.conn(id, "c1"))
	poll.Consistently(t, 3*600*time.Millisecond, "with Run refreshing, the user stays online for 3 TTLs", func() (bool, string) {
		u := h.get(s, id)
		return u.Online && u.Connections == 1, fmt.Sprintf("%+v", u)
	})
}

func testOfflineGrace(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{grace: h.grace})
	s.start(t)
	id := h.user("lee")
	h.watch(s, id)
	c1 := h.conn(id, "c1")
	h.connect(s, c1)
	u := h.disconnect(s, c1)
	if !u.Online || u.Status == presence.StatusOffline {
		t.Fatalf("within the offline grace the user must stay online; got %+v", u)
	}
	if g := h.get(s, id); !g.Online {
		t.Fatalf("Get within the grace: %+v, want online", g)
	}
	// Reconnect within the grace: no offline event at all.
	c2 := h.conn(id, "c2")
	checkOnline(t, h.connect(s, c2), 1)
	h.pass(h.grace + time.Second)
	marker := h.user("marker")
	h.watch(s, marker)
	h.connect(s, h.conn(marker, "c"))
	h.waitEvent(s.rec, marker, "online", func(u presence.User) bool { return u.Online })
	if h.cfg.RealTime {
		// Let a real grace period pass while the user is connected.
		poll.Consistently(t, h.grace+200*time.Millisecond, "the reconnected user stays online", func() (bool, string) {
			g := h.get(s, id)
			return g.Online, fmt.Sprintf("%+v", g)
		})
	}
	for _, e := range s.rec.Of(id) {
		if !e.Online {
			t.Fatalf("a reconnect within the grace produced an offline event: %+v", s.rec.Of(id))
		}
	}
	checkOnline(t, h.get(s, id), 1)
	// A disconnect with no reconnect goes offline once the grace is over.
	h.disconnect(s, c2)
	h.pass(h.grace + time.Second)
	ev := h.waitEvent(s.rec, id, "offline after the grace", isOffline)
	checkOffline(t, h.get(s, id))
	if ev.LastSeen <= 0 {
		t.Fatalf("offline event lastSeen %d, want the disconnect time", ev.LastSeen)
	}
}

func testConcurrent(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	s.start(t) // on real time, a loaded machine may take longer than the TTL
	id := h.user("mob")
	h.watch(s, id)
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				c := h.conn(id, fmt.Sprintf("w%d-%d", w, r))
				if _, err := s.Connect(h.ctx(), c); err != nil {
					errs <- err
					return
				}
				if r%2 == 0 {
					if _, err := s.Disconnect(h.ctx(), c); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := workers * rounds / 2
	u := h.get(s, id)
	checkOnline(t, u, want)
	h.waitEvent(s.rec, id, "last version", func(e presence.User) bool { return e.Version == u.Version })
	seen := map[int64]bool{}
	for _, e := range s.rec.Of(id) {
		if seen[e.Version] {
			t.Fatalf("two events with version %d", e.Version)
		}
		seen[e.Version] = true
	}
}

func testReady(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	if err := s.Ready(h.ctx()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

func testCrossReplica(t *testing.T, h *harness) {
	a, b := h.newStore(storeOpts{}), h.newStore(storeOpts{})
	a.start(t)
	b.start(t)
	id := h.user("nina")
	h.watch(b, id)
	c1, c2 := h.conn(id, "a1"), h.conn(id, "b1")
	h.connect(a, c1)
	checkOnline(t, h.get(b, id), 1)
	h.waitEvent(b.rec, id, "online from the other replica", func(u presence.User) bool { return u.Online })
	h.connect(b, c2)
	checkOnline(t, h.get(a, id), 2)
	if _, err := a.SetStatus(h.ctx(), c1, presence.StatusBusy, "x"); err != nil {
		t.Fatal(err)
	}
	h.waitEvent(b.rec, id, "status from the other replica", func(u presence.User) bool { return u.Status == presence.StatusBusy })
	h.disconnect(a, c1)
	h.disconnect(b, c2)
	h.waitEvent(b.rec, id, "offline", isOffline)
	if evs := a.rec.Of(id); len(evs) != 0 {
		t.Fatalf("replica a does not watch %s but got %+v", id, evs)
	}
}

func testCrashedReplica(t *testing.T, h *harness) {
	a, b := h.newStore(storeOpts{}), h.newStore(storeOpts{})
	a.start(t)
	b.start(t)
	id := h.user("oscar")
	h.watch(b, id)
	h.connect(a, h.conn(id, "a1"))
	h.waitEvent(b.rec, id, "online", func(u presence.User) bool { return u.Online })
	a.stop() // a "dies": no more refreshes, and no Close yet.
	h.pass(h.ttl + h.hb)
	poll.Eventually(h.t, h.within(h.ttl+h.hb), id+" offline after its replica died", func() (bool, string) {
		u := h.get(b, id)
		return isOffline(u), fmt.Sprintf("%+v", u)
	})
	h.waitEvent(b.rec, id, "offline after its replica died", isOffline)
}

func testCloseRemoves(t *testing.T, h *harness) {
	a, b := h.newStore(storeOpts{}), h.newStore(storeOpts{})
	id := h.user("pat")
	h.watch(b, id)
	h.connect(a, h.conn(id, "a1"))
	a.closed = true
	if err := a.Close(h.ctx()); err != nil {
		t.Fatal(err)
	}
	checkOffline(t, h.get(b, id))
	h.waitEvent(b.rec, id, "offline after Close", isOffline)
}
