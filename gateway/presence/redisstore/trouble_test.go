package redisstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/internal/poll"
)

// masterWithReplica returns a master's port and its replica's port, from
// CLUSTER NODES on the cluster's first node.
func (c *ownCluster) masterWithReplica(t *testing.T) (master, replica int) {
	t.Helper()
	out := c.cli(t, c.base, "cluster", "nodes")
	ports := map[string]int{} // node id -> port
	type node struct{ id, flags, masterID string }
	var nodes []node
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr := strings.SplitN(f[1], "@", 2)[0]
		p, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
		ports[f[0]] = p
		nodes = append(nodes, node{f[0], f[2], f[3]})
	}
	for _, n := range nodes {
		if strings.Contains(n.flags, "slave") && !strings.Contains(n.flags, "fail") {
			if mp, ok := ports[n.masterID]; ok {
				return mp, ports[n.id]
			}
		}
	}
	t.Fatalf("no master with a live replica in:\n%s", out)
	return 0, 0
}

func (c *ownCluster) role(t *testing.T, port int) string {
	out, err := c.run("status")
	_ = err
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, strconv.Itoa(port)+" ") {
			f := strings.Fields(line)
			return f[len(f)-1]
		}
	}
	return ""
}

// failover runs CLUSTER FAILOVER on replica until it is a master. A replica
// whose link to its master is not up yet (a fresh cluster) accepts the
// command but cannot complete it, so wait for the link and retry.
func (c *ownCluster) failover(t *testing.T, replica int) {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		poll.Eventually(t, 20*time.Second, fmt.Sprintf("node %d in sync with its master", replica), func() (bool, string) {
			info := c.replication(t, replica)
			return info["master_link_status"] == "up", fmt.Sprint(info)
		})
		c.cli(t, replica, "cluster", "failover")
		if poll.Within(5*time.Second, func() bool { return c.role(t, replica) == "master" }) {
			return
		}
	}
	t.Fatalf("node %d not promoted by CLUSTER FAILOVER after 5 attempts", replica)
}

// presenceHolds checks, for a while, that every id stays online on r
// (read errors during the failover window are tolerated; a wrong answer
// is not).
func presenceHolds(t *testing.T, r *testReplica, ids []string, d time.Duration) {
	t.Helper()
	poll.Consistently(t, d, "every user stays online while its connection is open", func() (bool, string) {
		us, err := r.Get(tctx(t), ids)
		if err != nil {
			return true, ""
		}
		for _, u := range us {
			if !u.Online || u.Connections != 1 {
				return false, fmt.Sprintf("%s went %+v", u.UserID, u)
			}
		}
		return true, ""
	})
}

func allOnline(t *testing.T, r *testReplica, ids []string, within time.Duration) {
	t.Helper()
	poll.Eventually(t, within, "every user online with one connection", func() (bool, string) {
		us, err := r.Get(tctx(t), ids)
		if err != nil {
			return false, err.Error()
		}
		for _, u := range us {
			if !u.Online || u.Connections != 1 {
				return false, fmt.Sprintf("%+v", u)
			}
		}
		return true, ""
	})
}

// statusReachesAll sets every user's status on a and waits until b has
// the event for each: every user's subscription works, whichever shard
// it is on.
func statusReachesAll(t *testing.T, a, b *testReplica, ids []string, st presence.Status) {
	t.Helper()
	for _, id := range ids {
		if _, err := a.SetStatus(tctx(t), presence.Conn{UserID: id, ID: id + "-c"}, st, ""); err != nil {
			t.Fatalf("SetStatus %s: %v", id, err)
		}
	}
	poll.Eventually(t, 10*time.Second, "every status event seen by the other replica", func() (bool, string) {
		for _, id := range ids {
			evs := b.ev.Of(id)
			if len(evs) == 0 || evs[len(evs)-1].Status != st {
				return false, fmt.Sprintf("%s: %+v", id, evs)
			}
		}
		return true, ""
	})
}

// changesPropagate checks that new changes on a still reach b's watch
// (subscriptions were re-routed): a disconnect and a fresh user.
func changesPropagate(t *testing.T, a, b *testReplica, gone string, fresh string) {
	t.Helper()
	if _, err := a.Disconnect(tctx(t), presence.Conn{UserID: gone, ID: gone + "-c"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Watch(tctx(t), fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Connect(tctx(t), presence.Conn{UserID: fresh, ID: fresh + "-c"}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "offline of "+gone+" and online of "+fresh+" seen by the other replica", func() (bool, string) {
		g, f := b.ev.Of(gone), b.ev.Of(fresh)
		ok := len(g) > 0 && !g[len(g)-1].Online && len(f) > 0 && f[len(f)-1].Online
		return ok, fmt.Sprintf("%s: %+v; %s: %+v", gone, g, fresh, f)
	})
}

// A master failover (manual, then a killed master) is survived: the
// connections stay, presence stays right, and changes keep propagating.
func TestMasterFailover(t *testing.T) {
	cl := disruptableCluster(t)
	ns := testNamespace()
	o := replicaOpts{ttl: 8 * time.Second, hb: time.Second, password: cl.password}
	ob := o
	ob.username = "default" // AUTH <user> <password>, the ACL form
	a, b := newReplica(t, cl.nodes, ns, o), newReplica(t, cl.nodes, ns, ob)
	ids := users(ns, 30)
	for _, id := range ids {
		if err := b.Watch(tctx(t), id); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Connect(tctx(t), presence.Conn{UserID: id, ID: id + "-c"}); err != nil {
			t.Fatal(err)
		}
	}
	allOnline(t, b, ids, 5*time.Second)

	// 1. CLUSTER FAILOVER on a replica: it takes over its master's slots.
	_, replica := cl.masterWithReplica(t)
	cl.failover(t, replica)
	cl.mustRun(t, "wait")
	statusReachesAll(t, a, b, ids, presence.StatusBusy)
	presenceHolds(t, b, ids, 2*o.ttl)
	changesPropagate(t, a, b, ids[0], ns+"-fresh1")

	// 2. Kill a master outright; its replica is promoted by the cluster.
	master, replica := cl.masterWithReplica(t)
	cl.mustRun(t, "stop-node", strconv.Itoa(master))
	poll.Eventually(t, 30*time.Second, fmt.Sprintf("node %d promoted after %d died", replica, master), func() (bool, string) {
		r := cl.role(t, replica)
		return r == "master", r
	})
	allOnline(t, b, ids[1:], 3*o.hb+5*time.Second)
	presenceHolds(t, b, ids[1:], o.ttl)
	changesPropagate(t, a, b, ids[1], ns+"-fresh2")
	if got := testutilGoroutines(); got > 500 {
		t.Fatalf("%d goroutines after the failovers", got)
	}
	// Restore the cluster for the next test: the old master rejoins as a replica.
	cl.mustRun(t, "start-node", strconv.Itoa(master))
	cl.mustRun(t, "wait")
}

func testutilGoroutines() int { return runtime.NumGoroutine() }

// The whole cluster goes down and comes back empty (no persistence):
// Ready reports it, calls fail fast with ErrUnavailable, goroutines do not
// pile up, open connections are kept, and presence is written again (with
// the watchers told) once Redis answers.
func TestRedisDownAndBack(t *testing.T) {
	cl := disruptableCluster(t)
	ns := testNamespace()
	o := replicaOpts{ttl: 3 * time.Second, hb: 500 * time.Millisecond, password: cl.password}
	ob := o
	ob.username = "default"
	a, b := newReplica(t, cl.nodes, ns, o), newReplica(t, cl.nodes, ns, ob)
	ids := users(ns, 20)
	for _, id := range ids {
		if err := b.Watch(tctx(t), id); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Connect(tctx(t), presence.Conn{UserID: id, ID: id + "-c"}); err != nil {
			t.Fatal(err)
		}
	}
	allOnline(t, b, ids, 5*time.Second)
	before := runtime.NumGoroutine()

	cl.mustRun(t, "stop-all")
	t.Cleanup(func() { _, _ = cl.run("start-all") }) // leave it up for other tests whatever happens
	poll.Eventually(t, 10*time.Second, "Ready reports the outage", func() (bool, string) {
		err := a.Ready(tctx(t))
		return errors.Is(err, presence.ErrUnavailable), fmt.Sprint(err)
	})
	// Calls fail fast, and hammering the store does not pile up goroutines.
	for i := range 20 {
		start := time.Now()
		_, err := a.Connect(tctx(t), presence.Conn{UserID: ns + "-late", ID: fmt.Sprint("late", i)})
		if !errors.Is(err, presence.ErrUnavailable) {
			t.Fatalf("Connect during the outage: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Connect during the outage took %s", d)
		}
		_ = a.Ready(tctx(t))
		if _, err := b.Get(tctx(t), ids[:3]); err == nil {
			t.Fatal("Get during the outage succeeded")
		}
		// Watch gives up when its caller's context ends, however many
		// others wait for Redis too.
		wctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start = time.Now()
		err = b.Watch(wctx, fmt.Sprint(ns, "-w", i))
		cancel()
		if err == nil || time.Since(start) > 3*time.Second {
			t.Fatalf("Watch during the outage: %v after %s; want an error within the caller's deadline", err, time.Since(start))
		}
	}
	if after := runtime.NumGoroutine(); after > before+40 {
		t.Fatalf("goroutines grew from %d to %d during the outage", before, after)
	}

	nEvents := map[string]int{}
	for _, id := range ids {
		nEvents[id] = len(b.ev.Of(id))
	}
	cl.mustRun(t, "start-all")
	poll.Eventually(t, 30*time.Second, "Ready again", func() (bool, string) {
		err := a.Ready(tctx(t))
		return err == nil, fmt.Sprint(err)
	})
	allOnline(t, b, ids, 20*time.Second)
	poll.Eventually(t, 20*time.Second, "watchers told every user is online again", func() (bool, string) {
		for _, id := range ids {
			evs := b.ev.Of(id)
			if len(evs) <= nEvents[id] || !evs[len(evs)-1].Online {
				return false, fmt.Sprintf("%s: %+v", id, evs)
			}
		}
		return true, ""
	})
	presenceHolds(t, b, ids, o.ttl+time.Second)
	changesPropagate(t, a, b, ids[0], ns+"-after")
}

// A wrong password is reported by Ready (the transport's /readyz 503) and by
// the calls, as ErrUnavailable naming the cause; nothing panics or hangs.
func TestWrongPassword(t *testing.T) {
	cl := disruptableCluster(t)
	r := newReplica(t, cl.nodes, testNamespace(), replicaOpts{password: "wrong"})
	err := r.Ready(tctx(t))
	if !errors.Is(err, presence.ErrUnavailable) || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("Ready with a wrong password: %v; want ErrUnavailable naming WRONGPASS", err)
	}
	if _, err := r.Connect(tctx(t), presence.Conn{UserID: "x", ID: "c"}); !errors.Is(err, presence.ErrUnavailable) {
		t.Fatalf("Connect with a wrong password: %v; want ErrUnavailable", err)
	}
	if err := r.Watch(tctx(t), "x"); !errors.Is(err, presence.ErrUnavailable) || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("Watch with a wrong password: %v; want ErrUnavailable naming WRONGPASS", err)
	}
}
