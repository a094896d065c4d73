package redisstore

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
	"github.com/presencekit/presence-operator/internal/poll"
)

// Two survivors reap the same dead replica at the same moment: exactly one
// wins the claim, every connection is removed once, and each user's offline
// event is published once.
func TestTwoSurvivorsReapSameDeadReplica(t *testing.T) {
	nodes, ns := testNodes(t), testNamespace()
	clock := &presencetest.Clock{}
	o := replicaOpts{ttl: time.Minute, hb: 20 * time.Second, now: clock.Now, noRun: true}
	dead := newReplica(t, nodes, ns, o)
	b, c := newReplica(t, nodes, ns, o), newReplica(t, nodes, ns, o)
	w := newReplica(t, nodes, ns, o)
	ids := users(ns, 60)
	for _, id := range ids {
		if err := w.Watch(tctx(t), id); err != nil {
			t.Fatal(err)
		}
		if _, err := dead.Connect(tctx(t), presence.Conn{UserID: id, ID: id + "-c"}); err != nil {
			t.Fatal(err)
		}
	}
	poll.Eventually(t, 5*time.Second, "online events for every user", func() (bool, string) {
		for _, id := range ids {
			if len(w.ev.Of(id)) != 1 {
				return false, fmt.Sprintf("%s: %+v", id, w.ev.Of(id))
			}
		}
		return true, ""
	})

	// The replica dies (no more heartbeats) and its lease lapses.
	clock.Advance(time.Minute + time.Second)
	inc := dead.incarnation()
	if lapsed := b.findLapsed(tctx(t)); !slices.Contains(lapsed, inc) {
		t.Fatalf("lapsed leases %v do not include the dead replica's %s", lapsed, inc)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range []*testReplica{b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r.reap(tctx(t), inc)
		}()
	}
	close(start)
	wg.Wait()

	rb, rc := b.reaped(), c.reaped()
	if !(rb == 60 && rc == 0 || rb == 0 && rc == 60) {
		t.Fatalf("reaped connections: b %v, c %v; want 60 by exactly one of them", rb, rc)
	}
	for _, id := range ids {
		if u := getOne(t, b, id); u.Online {
			t.Fatalf("%s still online after reaping: %+v", id, u)
		}
	}
	poll.Eventually(t, 5*time.Second, "exactly one offline event per user", func() (bool, string) {
		for _, id := range ids {
			evs := w.ev.Of(id)
			if len(evs) != 2 || evs[1].Online {
				return false, fmt.Sprintf("%s: %+v", id, evs)
			}
		}
		return true, ""
	})
	left, err := b.client().ZRange(tctx(t), b.keys.replicas(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(left, inc) || slices.Contains(left, "reap:"+inc) {
		t.Fatalf("lease table still holds the reaped replica: %v", left)
	}
	if n, _ := b.client().Exists(tctx(t), b.keys.index(inc)).Result(); n != 0 {
		t.Fatal("the reaped replica's user index was not deleted")
	}
}

// A replica that stalls past its lease (a long pause) is reaped while
// alive; when it wakes up, racing the reaper, it must end up with its
// connection present exactly once, and a later Disconnect leaves no ghost.
func TestReapedWhileAliveKeepsItsConnections(t *testing.T) {
	nodes, ns := testNodes(t), testNamespace()
	clock := &presencetest.Clock{}
	o := replicaOpts{ttl: time.Minute, hb: 20 * time.Second, now: clock.Now, noRun: true}
	x, y := newReplica(t, nodes, ns, o), newReplica(t, nodes, ns, o)
	id := ns + "-stall"
	conn := presence.Conn{UserID: id, ID: id + "-c1"}
	if _, err := x.Connect(tctx(t), conn); err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		clock.Advance(time.Minute + time.Second) // x's lease lapses
		old := x.incarnation()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); y.reap(tctx(t), old) }()
		go func() { defer wg.Done(); x.heartbeat(tctx(t)) }()
		wg.Wait()
		x.heartbeat(tctx(t)) // a normal heartbeat after the race
		if x.incarnation() == old {
			t.Fatalf("round %d: x kept incarnation %s after its lease lapsed", round, old)
		}
		if u := getOne(t, y, id); !u.Online || u.Connections != 1 {
			t.Fatalf("round %d: after the race the user is %+v, want online with 1 connection", round, u)
		}
	}
	if u, err := x.Disconnect(tctx(t), conn); err != nil || u.Online {
		t.Fatalf("Disconnect: %+v, %v; want offline", u, err)
	}
	if u := getOne(t, y, id); u.Online {
		t.Fatalf("ghost connection after Disconnect: %+v", u)
	}
}
