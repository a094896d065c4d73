package redisstore

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/internal/poll"
)

// A watched user's slot is migrated to another master (resharding): the
// old owner drops the shard subscription, the store re-subscribes on the
// new owner, and changes, reads and refreshes keep working (MOVED/ASK
// followed by the client).
func TestSlotMigration(t *testing.T) {
	cl := disruptableCluster(t)
	cl.mustRun(t, "wait")
	ns := testNamespace()
	o := replicaOpts{ttl: 3 * time.Second, hb: 500 * time.Millisecond, password: cl.password}
	a, b := newReplica(t, cl.nodes, ns, o), newReplica(t, cl.nodes, ns, o)
	id := ns + "-moving"
	if err := b.Watch(tctx(t), id); err != nil {
		t.Fatal(err)
	}
	conn := presence.Conn{UserID: id, ID: id + "-c"}
	if _, err := a.Connect(tctx(t), conn); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, "online event", func() (bool, string) {
		evs := b.ev.Of(id)
		return len(evs) == 1 && evs[0].Online, fmt.Sprintf("%+v", evs)
	})

	key := a.keys.conns(id)
	slot := strings.TrimSpace(cl.cli(t, cl.base, "cluster", "keyslot", key))
	node, err := a.client().MasterForKey(tctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	addr := node.Options().Addr
	src, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	var masters []int
	for _, line := range strings.Split(strings.TrimSpace(cl.cli(t, cl.base, "cluster", "nodes")), "\n") {
		f := strings.Fields(line)
		if len(f) > 8 && strings.Contains(f[2], "master") && !strings.Contains(f[2], "fail") {
			a := strings.SplitN(f[1], "@", 2)[0]
			p, _ := strconv.Atoi(a[strings.LastIndexByte(a, ':')+1:])
			masters = append(masters, p)
		}
	}
	dst := 0
	for _, p := range masters {
		if p != src {
			dst = p
			break
		}
	}
	if dst == 0 {
		t.Fatalf("no second master among %v", masters)
	}
	srcID := strings.TrimSpace(cl.cli(t, src, "cluster", "myid"))
	dstID := strings.TrimSpace(cl.cli(t, dst, "cluster", "myid"))

	// The steps redis-cli --cluster reshard takes, for this one slot.
	cl.cli(t, dst, "cluster", "setslot", slot, "importing", srcID)
	cl.cli(t, src, "cluster", "setslot", slot, "migrating", dstID)
	keys := strings.Fields(cl.cli(t, src, "cluster", "getkeysinslot", slot, "100"))
	if len(keys) > 0 {
		args := append([]string{"migrate", "127.0.0.1", strconv.Itoa(dst), "", "0", "5000", "AUTH", cl.password, "KEYS"}, keys...)
		if out := cl.cli(t, src, args...); !strings.Contains(out, "OK") {
			t.Fatalf("MIGRATE: %s", out)
		}
	}
	for _, p := range masters {
		cl.cli(t, p, "cluster", "setslot", slot, "node", dstID)
	}
	t.Logf("moved slot %s (%d keys) from %d to %d", slot, len(keys), src, dst)

	// Changes still reach the watcher, now through the new owner.
	if _, err := a.SetStatus(tctx(t), conn, presence.StatusBusy, "moved"); err != nil {
		t.Fatalf("SetStatus after the migration: %v", err)
	}
	poll.Eventually(t, 10*time.Second, "status event after the migration", func() (bool, string) {
		evs := b.ev.Of(id)
		last := evs[len(evs)-1]
		return last.Status == presence.StatusBusy && last.Text == "moved", fmt.Sprintf("%+v", evs)
	})
	// Refreshes follow MOVED: the user stays online well past the TTL.
	presenceHolds(t, b, []string{id}, 2*o.ttl)
	if _, err := a.Disconnect(tctx(t), conn); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, "offline event after the migration", func() (bool, string) {
		evs := b.ev.Of(id)
		return !evs[len(evs)-1].Online, fmt.Sprintf("%+v", evs)
	})
}
