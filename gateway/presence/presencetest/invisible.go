package presencetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/internal/poll"
)

// setStatus sets a status through connection c and returns the user.
func (h *harness) setStatus(s presence.Store, c presence.Conn, st presence.Status, text string) presence.User {
	h.t.Helper()
	u, err := s.SetStatus(h.ctx(), c, st, text)
	if err != nil {
		h.t.Fatalf("SetStatus(%+v, %q): %v", c, st, err)
	}
	return u
}

// checkHidden fails unless u shows offline with the lastSeen and version of
// the moment the user went invisible: a change of version would mean the
// store published something about the hidden user.
func checkHidden(t *testing.T, what string, u, hid presence.User) {
	t.Helper()
	if !isOffline(u) || u.Text != "" || u.LastSeen != hid.LastSeen || u.Version != hid.Version {
		t.Fatalf("%s: got %+v, want offline with lastSeen %d and version %d (as when it went invisible)",
			what, u, hid.LastSeen, hid.Version)
	}
}

// testInvisible: an invisible user shows offline to reads and events, with
// lastSeen the moment it hid and a new version; its later connections start
// invisible; another status shows it online again; its last connection
// closing publishes nothing and keeps lastSeen; once really offline it is
// forgotten, and the next connection is visible.
func testInvisible(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	s.start(t) // on real time, keeps the connections alive
	id := h.user("ivy")
	h.watch(s, id)
	c1 := h.conn(id, "c1")
	on := h.connect(s, c1)
	h.setStatus(s, c1, presence.StatusAway, "lunch")
	h.pass(time.Second)
	t0 := h.clock.Now().UnixMilli()
	hid := h.setStatus(s, c1, presence.StatusInvisible, "")
	t1 := h.clock.Now().UnixMilli()
	if !isOffline(hid) || hid.Text != "" || hid.LastSeen < t0 || hid.LastSeen > t1 || hid.Version <= on.Version {
		t.Fatalf("SetStatus invisible returned %+v, want offline, no text, lastSeen now (between %d and %d), version > %d",
			hid, t0, t1, on.Version)
	}
	ev := h.waitEvent(s.rec, id, "offline on going invisible", func(u presence.User) bool { return u.Version == hid.Version })
	checkHidden(t, "the event on going invisible", ev, hid)
	h.pass(time.Second)
	checkHidden(t, "Get while invisible", h.get(s, id), hid)

	// Invisible again: nothing changes. A second connection starts invisible.
	checkHidden(t, "invisible twice", h.setStatus(s, c1, presence.StatusInvisible, ""), hid)
	c2 := h.conn(id, "c2")
	checkHidden(t, "a second connection of an invisible user", h.connect(s, c2), hid)
	checkHidden(t, "Get with two hidden connections", h.get(s, id), hid)
	// Closing one of two connections stays hidden.
	checkHidden(t, "closing one of two hidden connections", h.disconnect(s, c2), hid)

	// Back to busy: online again, with a new version, all connections counted.
	c3 := h.conn(id, "c3")
	h.connect(s, c3)
	back := h.setStatus(s, c3, presence.StatusBusy, "call")
	if !back.Online || back.Status != presence.StatusBusy || back.Text != "call" || back.Connections != 2 || back.Version <= hid.Version {
		t.Fatalf("busy after invisible: %+v, want online, busy, call, 2 connections, version > %d", back, hid.Version)
	}
	h.waitEvent(s.rec, id, "online again", func(u presence.User) bool {
		return u.Version == back.Version && u.Online && u.Status == presence.StatusBusy && u.Connections == 2
	})

	// Hidden again, then every connection closes: no second offline, and
	// lastSeen stays the moment it hid.
	h.pass(time.Second)
	hid2 := h.setStatus(s, c1, presence.StatusInvisible, "")
	if !isOffline(hid2) || hid2.Version <= back.Version || hid2.LastSeen < back.LastSeen {
		t.Fatalf("invisible again: %+v, want offline with version > %d", hid2, back.Version)
	}
	h.pass(time.Second)
	checkHidden(t, "closing the next to last hidden connection", h.disconnect(s, c1), hid2)
	checkHidden(t, "closing the last hidden connection", h.disconnect(s, c3), hid2)
	h.pass(time.Second)
	checkHidden(t, "Get after the last hidden connection closed", h.get(s, id), hid2)

	// Really offline: invisibility is forgotten with the session.
	fresh := h.connect(s, h.conn(id, "c4"))
	if !fresh.Online || fresh.Status != presence.StatusOnline || fresh.Text != "" || fresh.Version <= hid2.Version {
		t.Fatalf("a connection after the invisible user went offline: %+v, want online, version > %d", fresh, hid2.Version)
	}
	for _, e := range s.rec.Of(id) {
		if e.Version > hid.Version && e.Version < back.Version || e.Version > hid2.Version && e.Version < fresh.Version {
			t.Fatalf("an event was published while the user was invisible: %+v", s.rec.Of(id))
		}
	}
}

// testInvisibleGrace: with an offline grace, an invisible user's last
// disconnect keeps it hidden (lastSeen the moment it hid, no event), and a
// reconnect within the grace is still invisible.
func testInvisibleGrace(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{grace: h.grace})
	s.start(t)
	id := h.user("iris")
	h.watch(s, id)
	c1 := h.conn(id, "c1")
	h.connect(s, c1)
	hid := h.setStatus(s, c1, presence.StatusInvisible, "")
	h.pass(time.Second)
	checkHidden(t, "last disconnect of an invisible user, with a grace", h.disconnect(s, c1), hid)
	checkHidden(t, "Get within the grace", h.get(s, id), hid)
	c2 := h.conn(id, "c2")
	checkHidden(t, "reconnect within the grace", h.connect(s, c2), hid)
	back := h.setStatus(s, c2, presence.StatusOnline, "")
	checkOnline(t, back, 1)
	if back.Version <= hid.Version {
		t.Fatalf("online after invisible: version %d, want > %d", back.Version, hid.Version)
	}
	// Hidden again, then its grace runs out: nothing is published, and
	// lastSeen stays.
	hid2 := h.setStatus(s, c2, presence.StatusInvisible, "")
	h.disconnect(s, c2)
	h.pass(h.grace + time.Second)
	deadline := time.Now().Add(h.grace)
	if h.cfg.RealTime {
		poll.Eventually(t, h.within(h.grace), "the grace to end", func() (bool, string) {
			return time.Now().After(deadline), ""
		})
	}
	checkHidden(t, "after the grace of an invisible user", h.get(s, id), hid2)
	fresh := h.connect(s, h.conn(id, "c3"))
	if !fresh.Online || fresh.Version <= hid2.Version {
		t.Fatalf("a connection after the grace ended: %+v, want visible online, version > %d", fresh, hid2.Version)
	}
}

// testInvisibleCrossReplica: a watcher on replica b sees a's user go
// offline when it hides and online when it comes back; a connection the
// user opens on b meanwhile starts invisible.
func testInvisibleCrossReplica(t *testing.T, h *harness) {
	a, b := h.newStore(storeOpts{}), h.newStore(storeOpts{})
	a.start(t)
	b.start(t)
	id := h.user("isa")
	h.watch(b, id)
	ca := h.conn(id, "a1")
	h.connect(a, ca)
	h.waitEvent(b.rec, id, "online from a", func(u presence.User) bool { return u.Online })
	hid := h.setStatus(a, ca, presence.StatusInvisible, "")
	ev := h.waitEvent(b.rec, id, "offline from a on going invisible", func(u presence.User) bool { return u.Version == hid.Version })
	checkHidden(t, "b's event", ev, hid)
	checkHidden(t, "Get on b", h.get(b, id), hid)
	cb := h.conn(id, "b1")
	checkHidden(t, "a connection on b of a's invisible user", h.connect(b, cb), hid)
	checkHidden(t, "Get on a", h.get(a, id), hid)
	back := h.setStatus(b, cb, presence.StatusAway, "")
	h.waitEvent(b.rec, id, "online again", func(u presence.User) bool {
		return u.Version == back.Version && u.Online && u.Status == presence.StatusAway && u.Connections == 2
	})
	checkOnline(t, h.get(a, id), 2)
}

// testInvisibleCrashedReplica: the replica holding an invisible user dies;
// when it is reaped nothing is published about the user and its lastSeen
// stays the moment it hid.
func testInvisibleCrashedReplica(t *testing.T, h *harness) {
	a, b := h.newStore(storeOpts{}), h.newStore(storeOpts{})
	a.start(t)
	b.start(t)
	id, marker := h.user("ingo"), h.user("mark")
	h.watch(b, id)
	h.watch(b, marker)
	c := h.conn(id, "a1")
	h.connect(a, c)
	h.connect(a, h.conn(marker, "a1"))
	hid := h.setStatus(a, c, presence.StatusInvisible, "")
	h.waitEvent(b.rec, id, "offline on going invisible", func(u presence.User) bool { return u.Version == hid.Version })
	a.stop() // a dies: no refreshes, no Close
	h.pass(h.ttl + h.hb)
	h.waitEventWithin(b.rec, marker, h.within(h.ttl+h.hb), "offline after its replica died", isOffline)
	checkHidden(t, "Get after the replica died", h.get(b, id), hid)
	for _, e := range b.rec.Of(id) {
		if e.Version > hid.Version {
			t.Fatalf("an event was published about the invisible user of a dead replica: %+v", b.rec.Of(id))
		}
	}
	fresh := h.connect(b, h.conn(id, "b1"))
	if !fresh.Online || fresh.Version <= hid.Version {
		t.Fatalf("a connection after the dead replica's invisible user expired: %+v, want visible online, version > %d",
			fresh, hid.Version)
	}
}

// waitEventWithin is waitEvent with its own deadline.
func (h *harness) waitEventWithin(r *Recorder, id string, within time.Duration, what string, match func(presence.User) bool) {
	h.t.Helper()
	poll.Eventually(h.t, within, "event "+what+" for "+id, func() (bool, string) {
		evs := r.Of(id)
		for _, e := range evs {
			if match(e) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", evs)
	})
}

// testInvisibleKeptAlive: the heartbeat keeps an invisible user's
// connections alive without showing it: for three TTLs it reads offline,
// as when it hid, and nothing is published about it.
func testInvisibleKeptAlive(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{realTime: true})
	s.start(t)
	id := h.user("iona")
	h.watch(s, id)
	c := h.conn(id, "c1")
	h.connect(s, c)
	hid := h.setStatus(s, c, presence.StatusInvisible, "")
	poll.Consistently(t, 3*600*time.Millisecond, "the invisible user stays hidden while Run refreshes it", func() (bool, string) {
		u := h.get(s, id)
		return isOffline(u) && u.Version == hid.Version && u.LastSeen == hid.LastSeen, fmt.Sprintf("%+v", u)
	})
	back := h.setStatus(s, c, presence.StatusOnline, "")
	checkOnline(t, back, 1) // its connection is still live
	for _, e := range s.rec.Of(id) {
		if e.Version > hid.Version && e.Version < back.Version {
			t.Fatalf("an event was published while the user was invisible: %+v", s.rec.Of(id))
		}
	}
}
