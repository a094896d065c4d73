package presencetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/internal/poll"
)

// testLastSeenWithGrace: lastSeen is the moment the last connection closed,
// during the offline grace (while the user still shows online) and after
// it: it never goes backwards.
func testLastSeenWithGrace(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{grace: h.grace})
	id := h.user("gail")
	c := h.conn(id, "c1")
	h.connect(s, c)
	h.pass(time.Second)
	t0 := h.clock.Now().UnixMilli()
	closed := h.disconnect(s, c)
	t1 := h.clock.Now().UnixMilli()
	if !closed.Online || closed.LastSeen < t0 || closed.LastSeen > t1 {
		t.Fatalf("Disconnect within the grace returned %+v, want online with lastSeen the disconnect time (between %d and %d)", closed, t0, t1)
	}
	h.pass(time.Second)
	during := h.get(s, id)
	if !h.cfg.RealTime && !during.Online {
		t.Fatalf("Get within the grace: %+v, want online", during)
	}
	if during.LastSeen != closed.LastSeen {
		t.Fatalf("Get within the grace: lastSeen %d, want the disconnect time %d (it must not move with the clock)", during.LastSeen, closed.LastSeen)
	}
	h.pass(h.grace)
	var after presence.User
	poll.Eventually(t, h.within(h.grace), id+" offline after the grace", func() (bool, string) {
		after = h.get(s, id)
		return isOffline(after), fmt.Sprintf("%+v", after)
	})
	if after.LastSeen != closed.LastSeen {
		t.Fatalf("after the grace lastSeen is %d, within it %d: want both the disconnect time", after.LastSeen, closed.LastSeen)
	}
}

// testStallRecovery: the process stalls for longer than the TTL (here Run
// stops and the clock moves on), its socket stays open, and its connection
// expires. While it cannot keep its connections alive, Ready fails; once the
// heartbeat runs again it re-registers the connection: the user is online
// again, the last event says so, and status writes work again.
func testStallRecovery(t *testing.T, h *harness) {
	s := h.newStore(storeOpts{})
	s.start(t)
	id := h.user("stan")
	h.watch(s, id)
	c := h.conn(id, "c1")
	h.connect(s, c)
	h.waitEvent(s.rec, id, "online", func(u presence.User) bool { return u.Online })
	poll.Eventually(t, h.deadline, "Ready while the heartbeat runs", func() (bool, string) {
		err := s.Ready(h.ctx())
		return err == nil, fmt.Sprint(err)
	})

	s.stop() // the stall
	h.pass(h.ttl + h.hb)
	poll.Eventually(t, h.within(h.ttl+h.hb), id+" offline while the process is stalled", func() (bool, string) {
		u := h.get(s, id)
		return isOffline(u), fmt.Sprintf("%+v", u)
	})
	poll.Eventually(t, h.within(h.ttl), "Ready fails while connections are not kept alive", func() (bool, string) {
		return s.Ready(h.ctx()) != nil, "Ready returned nil"
	})
	if _, err := s.SetStatus(h.ctx(), c, presence.StatusAway, ""); err == nil {
		t.Fatal("SetStatus on an expired connection succeeded")
	}

	s.start(t) // the process runs again
	poll.Eventually(t, h.deadline, id+" online again after the stall", func() (bool, string) {
		u := h.get(s, id)
		return u.Online && u.Connections == 1, fmt.Sprintf("%+v", u)
	})
	poll.Eventually(t, h.deadline, "the last event of "+id+" says online", func() (bool, string) {
		evs := s.rec.Of(id)
		return len(evs) > 0 && evs[len(evs)-1].Online && evs[len(evs)-1].Connections == 1, fmt.Sprintf("%+v", evs)
	})
	u, err := s.SetStatus(h.ctx(), c, presence.StatusBusy, "back")
	if err != nil {
		t.Fatalf("SetStatus after the stall: %v", err)
	}
	if !u.Online || u.Status != presence.StatusBusy {
		t.Fatalf("SetStatus after the stall returned %+v", u)
	}
	poll.Eventually(t, h.deadline, "Ready again after the stall", func() (bool, string) {
		err := s.Ready(h.ctx())
		return err == nil, fmt.Sprint(err)
	})
	evs := s.rec.Of(id)
	for i := 1; i < len(evs); i++ {
		if evs[i].Version <= evs[i-1].Version {
			t.Fatalf("versions do not grow: %+v", evs)
		}
	}
}

// testStalledReplicaComesBack: replica a stalls for longer than the TTL,
// replica b reaps its connection and tells its watchers the user is
// offline. When a runs again it re-registers the connection, and b's
// watchers hear the user online again.
func testStalledReplicaComesBack(t *testing.T, h *harness) {
	a, b := h.newStore(storeOpts{}), h.newStore(storeOpts{})
	a.start(t)
	b.start(t)
	id := h.user("sam")
	h.watch(b, id)
	c := h.conn(id, "a1")
	h.connect(a, c)
	h.waitEvent(b.rec, id, "online", func(u presence.User) bool { return u.Online })
	a.stop()
	h.pass(h.ttl + h.hb)
	off := h.waitEvent(b.rec, id, "offline while a is stalled", isOffline)
	a.start(t)
	h.waitEvent(b.rec, id, "online again once a runs", func(u presence.User) bool {
		return u.Online && u.Connections == 1 && u.Version > off.Version
	})
	checkOnline(t, h.get(b, id), 1)
	if _, err := a.SetStatus(h.ctx(), c, presence.StatusAway, ""); err != nil {
		t.Fatalf("SetStatus after the stall: %v", err)
	}
}
