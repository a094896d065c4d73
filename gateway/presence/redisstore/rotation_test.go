package redisstore

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/presencekit/presence-operator/gateway/filewatch/filewatchtest"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
	"github.com/presencekit/presence-operator/internal/poll"
	"github.com/presencekit/presence-operator/internal/redistest"
)

// fileReplica is a store configured as the operator configures gateway
// pods: seeds, username and password from mounted volumes.
func fileReplica(t *testing.T, ns string, seeds, auth *filewatchtest.Volume) *testReplica {
	t.Helper()
	ev := &presencetest.Recorder{}
	m, pm := newTestMetrics()
	s, err := New(Config{
		NodesFile: seeds.Path("nodes"), UsernameFile: auth.Path("username"), PasswordFile: auth.Path("password"),
		FileCheckInterval: 10 * time.Millisecond, Namespace: ns, ReplicaName: "rot", Metrics: m,
	}, presence.Options{TTL: 2 * time.Second, Heartbeat: 400 * time.Millisecond, OnEvent: ev.Add, Metrics: pm})
	if err != nil {
		t.Fatal(err)
	}
	r := &testReplica{Store: s, ev: ev}
	r.start()
	t.Cleanup(func() { r.stop(); _ = s.Close(tctx(t)) })
	return r
}

// works checks, waiting for the reconnections, that replica a writes
// presence and that b, watching the user, hears it: commands, scripts and
// the subscriber's own connections all authenticate.
func works(t *testing.T, stage string, a, b *testReplica, id string) {
	t.Helper()
	poll.Eventually(t, 15*time.Second, stage+": b watches "+id, func() (bool, string) {
		err := b.Watch(tctx(t), id)
		return err == nil, fmt.Sprint(err)
	})
	poll.Eventually(t, 15*time.Second, stage+": a connects "+id, func() (bool, string) {
		_, err := a.Connect(tctx(t), presence.Conn{UserID: id, ID: "c1"})
		return err == nil, fmt.Sprint(err)
	})
	poll.Eventually(t, 15*time.Second, stage+": b hears "+id+" online", func() (bool, string) {
		evs := b.ev.Of(id)
		return len(evs) > 0 && evs[len(evs)-1].Online, fmt.Sprintf("%+v", evs)
	})
	poll.Eventually(t, 15*time.Second, stage+": both Ready", func() (bool, string) {
		ea, eb := a.Ready(tctx(t)), b.Ready(tctx(t))
		return ea == nil && eb == nil, fmt.Sprint(ea, eb)
	})
}

// TestPasswordAndSeedsRotateWithoutRestart: two stores read the seeds,
// username and password from volumes laid out as the kubelet lays out
// ConfigMap and Secret volumes. The cluster's password is changed on every
// node, the password file rewritten, and every client connection of the
// stores killed: the same stores (no restart) reconnect with the new
// password, write presence and hear each other's events. A new seed list
// that does not answer is not taken; one that does is, without a break.
func TestPasswordAndSeedsRotateWithoutRestart(t *testing.T) {
	testNodes(t)
	base, err := redistest.FreeBase(clusterScript(), "PRESENCE_TEST_REDIS_ROTATE_BASE_PORT")
	if err != nil {
		t.Fatal(err)
	}
	c := &ownCluster{base: base, script: clusterScript(), password: "first-password"}
	for i := range 6 {
		c.nodes = append(c.nodes, fmt.Sprintf("127.0.0.1:%d", base+i))
	}
	t.Cleanup(func() { _, _ = c.run("down") })
	c.mustRun(t, "up")

	seeds, auth := filewatchtest.NewVolume(t), filewatchtest.NewVolume(t)
	seeds.Set(map[string]string{"nodes": strings.Join(c.nodes[:2], ",")})
	auth.Set(map[string]string{"password": "first-password\n"}) // no username key: the default user
	ns := testNamespace()
	a, b := fileReplica(t, ns, seeds, auth), fileReplica(t, ns, seeds, auth)
	works(t, "before", a, b, ns+"-before")

	// Rotate: every node requires the new password (masterauth first, so
	// replication keeps working), the Secret volume gets it, and every
	// normal and pub/sub connection is killed, as a Redis restart would.
	for i := range 6 {
		c.cli(t, base+i, "CONFIG", "SET", "masterauth", "second-password")
		c.cli(t, base+i, "CONFIG", "SET", "requirepass", "second-password")
	}
	c.password = "second-password"
	auth.Set(map[string]string{"password": "second-password\n"})
	for i := range 6 {
		for _, typ := range []string{"normal", "pubsub"} {
			c.cli(t, base+i, "CLIENT", "KILL", "TYPE", typ)
		}
	}
	old := redis.NewClient(&redis.Options{Addr: c.nodes[0], Password: "first-password"})
	defer old.Close()
	if err := old.Ping(tctx(t)).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("the old password still works (%v): the rotation did not happen", err)
	}
	works(t, "after the password rotation", a, b, ns+"-rotated")

	// Seeds that do not answer are not taken: the client that works stays.
	seeds.Set(map[string]string{"nodes": "127.0.0.1:1"})
	poll.Eventually(t, 10*time.Second, "the unanswering seeds tried", func() (bool, string) {
		a.mu.Lock()
		defer a.mu.Unlock()
		return sameNodes(a.seedsFailed, []string{"127.0.0.1:1"}), fmt.Sprint(a.seedsFailed)
	})
	works(t, "with unanswering seeds", a, b, ns+"-badseeds")
	if n := testutil.ToFloat64(a.m.RedisReseedsTotal); n != 0 {
		t.Fatalf("redis_reseeds_total = %v after seeds that do not answer, want 0", n)
	}

	// Other nodes of the cluster as seeds: a new client, bootstrapped from
	// them, and no break.
	seeds.Set(map[string]string{"nodes": strings.Join(c.nodes[3:], "\n")})
	poll.Eventually(t, 10*time.Second, "both stores on the new seeds", func() (bool, string) {
		na, nb := testutil.ToFloat64(a.m.RedisReseedsTotal), testutil.ToFloat64(b.m.RedisReseedsTotal)
		return na == 1 && nb == 1, fmt.Sprintf("reseeds: a %v, b %v", na, nb)
	})
	if got := a.client().Options().Addrs; !sameNodes(got, c.nodes[3:]) {
		t.Fatalf("the client's seeds are %v, want %v", got, c.nodes[3:])
	}
	works(t, "after the seeds changed", a, b, ns+"-reseeded")
	// The first user's presence, written before everything, is still read.
	if u := getOne(t, b, ns+"-before"); !u.Online {
		t.Fatalf("%s-before: %+v, want online", ns, u)
	}
	if err := a.Close(tctx(t)); err != nil {
		t.Fatalf("Close with a retired client: %v", err)
	}
}
