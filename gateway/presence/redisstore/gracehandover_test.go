package redisstore

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
	"github.com/presencekit/presence-operator/internal/poll"
)

// TestOfflineGraceOutlivesAReplicaThatExits is the rolling restart: users
// connected to replica a disconnect (a drain), their offline grace
// pending; a then exits (Close). One user reconnects to b within the
// grace: no watcher ever sees it offline. One never comes back: a
// survivor announces it offline once the grace is over. A third was
// still connected when a closed: it gets the grace too.
func TestOfflineGraceOutlivesAReplicaThatExits(t *testing.T) {
	nodes, ns := testNodes(t), testNamespace()
	const grace = 3 * time.Second
	o := replicaOpts{ttl: 2 * time.Second, hb: 400 * time.Millisecond, grace: grace}
	a, b, w := newReplica(t, nodes, ns, o), newReplica(t, nodes, ns, o), newReplica(t, nodes, ns, o)
	back, gone, held := ns+"-back", ns+"-gone", ns+"-held"
	for _, id := range []string{back, gone, held} {
		if err := w.Watch(tctx(t), id); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Connect(tctx(t), presence.Conn{UserID: id, ID: id + "-a"}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Eventually(t, 5*time.Second, "the watcher sees the three users online", func() (bool, string) {
		for _, id := range []string{back, gone, held} {
			if evs := w.ev.Of(id); len(evs) != 1 || !evs[0].Online {
				return false, fmt.Sprintf("%s: %+v", id, evs)
			}
		}
		return true, ""
	})

	// The drain closes two of a's connections; the process then exits.
	closed := time.Now()
	for _, id := range []string{back, gone} {
		if u, err := a.Disconnect(tctx(t), presence.Conn{UserID: id, ID: id + "-a"}); err != nil || !u.Online {
			t.Fatalf("Disconnect(%s) = %+v, %v; want online within the grace", id, u, err)
		}
	}
	a.stop()
	if err := a.Close(tctx(t)); err != nil {
		t.Fatal(err)
	}
	// One client is back, on b, within the grace.
	if _, err := b.Connect(tctx(t), presence.Conn{UserID: back, ID: back + "-b"}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(closed); took >= grace {
		t.Fatalf("the reconnect came %s after the disconnect, past the grace (%s): the machine is too slow for this test", took, grace)
	}

	// The others go offline after the grace, announced by a survivor: the
	// lease of a lapsed at Close, b or w adopted the graces.
	for _, id := range []string{gone, held} {
		poll.Eventually(t, grace+5*time.Second, id+" announced offline after the grace", func() (bool, string) {
			evs := w.ev.Of(id)
			return len(evs) > 0 && !evs[len(evs)-1].Online, fmt.Sprintf("%+v", evs)
		})
		if u := getOne(t, w, id); u.Online {
			t.Fatalf("%s after the grace: %+v, want offline", id, u)
		}
	}
	if off := w.ev.Of(gone)[len(w.ev.Of(gone))-1]; off.LastSeen < closed.UnixMilli() || off.LastSeen > closed.Add(grace).UnixMilli() {
		t.Fatalf("offline event of %s says lastSeen %d, want its disconnect (at %d)", gone, off.LastSeen, closed.UnixMilli())
	}
	// Past every deadline (a survivor settled the graces above, this one's
	// included), the user who came back was never seen offline.
	poll.Consistently(t, time.Second, back+" never offline", func() (bool, string) {
		for _, u := range w.ev.Of(back) {
			if !u.Online {
				return false, fmt.Sprintf("offline event %+v", u)
			}
		}
		return true, ""
	})
	if u := getOne(t, w, back); !u.Online || u.Connections != 1 {
		t.Fatalf("%s: %+v, want online with its connection on b", back, u)
	}
	// Nothing is left of a: its index and its lease were reaped.
	poll.Eventually(t, 5*time.Second, "a's index and lease gone", func() (bool, string) {
		n, err := w.client().Exists(tctx(t), w.keys.index(a.incarnation())).Result()
		leases, lerr := w.client().ZRange(tctx(t), w.keys.replicas(), 0, -1).Result()
		return err == nil && n == 0 && lerr == nil && len(leases) == 2, fmt.Sprintf("index %d (%v), leases %v (%v)", n, err, leases, lerr)
	})
}

// TestClosedReplicaLeavesNoGraceWithoutGrace: with no offline grace,
// Close announces every user offline at once, as before.
func TestClosedReplicaLeavesNoGraceWithoutGrace(t *testing.T) {
	nodes, ns := testNodes(t), testNamespace()
	o := replicaOpts{ttl: 2 * time.Second, hb: 400 * time.Millisecond}
	a, w := newReplica(t, nodes, ns, o), newReplica(t, nodes, ns, o)
	id := ns + "-u"
	if err := w.Watch(tctx(t), id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Connect(tctx(t), presence.Conn{UserID: id, ID: "c"}); err != nil {
		t.Fatal(err)
	}
	a.stop()
	if err := a.Close(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if u := getOne(t, w, id); u.Online {
		t.Fatalf("after Close: %+v, want offline", u)
	}
	leases, err := w.client().ZRange(tctx(t), w.keys.replicas(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if l == a.incarnation() {
			t.Fatalf("a's lease is still there after a Close with nothing pending: %v", leases)
		}
	}
}

// TestAdoptedGraceIsHandedOnAgain: the survivor that adopted a pending
// grace exits too before the deadline; the next survivor adopts it in
// turn and settles it at the deadline, not before. On a clock the test
// moves, with each step called by hand.
func TestAdoptedGraceIsHandedOnAgain(t *testing.T) {
	nodes, ns := testNodes(t), testNamespace()
	clock := &presencetest.Clock{}
	o := replicaOpts{ttl: time.Minute, hb: 20 * time.Second, grace: 10 * time.Second, now: clock.Now, noRun: true}
	a, b, w := newReplica(t, nodes, ns, o), newReplica(t, nodes, ns, o), newReplica(t, nodes, ns, o)
	id := ns + "-roam"
	if err := w.Watch(tctx(t), id); err != nil {
		t.Fatal(err)
	}
	c := presence.Conn{UserID: id, ID: "c"}
	if _, err := a.Connect(tctx(t), c); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Disconnect(tctx(t), c); err != nil {
		t.Fatal(err)
	}
	// handOver closes from and lets to reap it.
	handOver := func(from, to *testReplica) {
		t.Helper()
		inc := from.incarnation()
		if err := from.Close(tctx(t)); err != nil {
			t.Fatal(err)
		}
		if lapsed := to.findLapsed(tctx(t)); !slices.Contains(lapsed, inc) {
			t.Fatalf("after Close the lapsed leases are %v, want %s among them", lapsed, inc)
		}
		to.reap(tctx(t), inc)
		if u := getOne(t, w, id); !u.Online {
			t.Fatalf("within the grace, after %s's exit: %+v, want online", inc, u)
		}
	}
	handOver(a, b)
	clock.Advance(5 * time.Second)
	handOver(b, w)
	w.settleGraces(tctx(t)) // before the deadline: nothing to do
	clock.Advance(5*time.Second + time.Millisecond)
	w.settleGraces(tctx(t))
	poll.Eventually(t, 5*time.Second, id+" offline once the grace is over", func() (bool, string) {
		evs := w.ev.Of(id)
		return len(evs) == 2 && evs[0].Online && !evs[1].Online, fmt.Sprintf("%+v", evs)
	})
	if u := getOne(t, w, id); u.Online {
		t.Fatalf("after the grace: %+v", u)
	}
}
