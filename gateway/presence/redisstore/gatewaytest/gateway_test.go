package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	presenceclient "github.com/presencekit/presence-operator/client"
	"github.com/presencekit/presence-operator/internal/gatewayproc"
	"github.com/presencekit/presence-operator/internal/poll"
)

func TestCrossReplicaEventsAndUserOnTwoReplicas(t *testing.T) {
	nodes := testNodes(t)
	g1, g2, g3 := startGateway(t, "g1", nodes), startGateway(t, "g2", nodes), startGateway(t, "g3", nodes)
	alice := uniq("alice")
	w := dialClient(t, g2, uniq("watcher"))
	w.subscribe(alice)

	a1 := connect(t, g1, alice)
	w.waitEvent(5*time.Second, alice, "online from g1", func(u map[string]any) bool { return online(u) && conns(u) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a1.SetStatus(ctx, presenceclient.StatusAway, "lunch"); err != nil {
		t.Fatal(err)
	}
	w.waitEvent(5*time.Second, alice, "away from g1", func(u map[string]any) bool {
		return u["status"] == "away" && u["text"] == "lunch"
	})

	a3 := connect(t, g3, alice) // the same user on a second replica
	w.waitEvent(5*time.Second, alice, "two connections", func(u map[string]any) bool { return online(u) && conns(u) == 2 })
	for _, g := range []*gw{g1, g2, g3} {
		u, err := g.presenceOf(t, alice)
		if err != nil || !online(u) || conns(u) != 2 || u["status"] != "away" {
			t.Fatalf("GET /v1/presence on %s: %v %v; want online, away, 2 connections", g.name, u, err)
		}
	}

	_ = a1.Close()
	w.waitEvent(5*time.Second, alice, "one connection left", func(u map[string]any) bool { return online(u) && conns(u) == 1 })
	closed := time.Now()
	_ = a3.Close()
	w.waitEvent(5*time.Second, alice, "offline", func(u map[string]any) bool { return !online(u) && u["status"] == "offline" })
	t.Logf("offline after a clean disconnect seen on another replica in %s", time.Since(closed))
	// Versions only grow in the order the watcher received them.
	var prev float64
	for _, e := range w.events(alice) {
		v, _ := e["version"].(float64)
		if v <= prev {
			t.Fatalf("versions not increasing: %v", w.events(alice))
		}
		prev = v
	}
}

// A replica killed with SIGKILL: reads stop reporting its connection once
// the TTL has passed, and the offline event is delivered within
// PRESENCE_TTL + HEARTBEAT_INTERVAL (plus scheduling slack).
func TestSIGKILLedReplicaUsersGoOffline(t *testing.T) {
	nodes := testNodes(t)
	g1, g2 := startGateway(t, "g1", nodes), startGateway(t, "g2", nodes)
	victim := startGateway(t, "victim", nodes)
	bob, carol := uniq("bob"), uniq("carol")
	w := dialClient(t, g1, uniq("watcher"))
	w.subscribe(bob, carol)
	connect(t, victim, bob)
	connect(t, victim, carol)
	connect(t, g2, carol) // carol also on a live replica: she must stay online
	w.waitEvent(5*time.Second, carol, "carol on two replicas", func(u map[string]any) bool { return conns(u) == 2 })

	const reaped = "presence_gateway_reaped_connections_total"
	before := g1.counter(t, reaped) + g2.counter(t, reaped)
	if err := victim.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-victim.Exited

	// After the TTL no read may report the ghost, reaped or not.
	time.Sleep(time.Until(killed.Add(ttl + 100*time.Millisecond))) // waiting for time itself to pass, the thing under test
	u, err := g2.presenceOf(t, bob)
	if err != nil || online(u) {
		t.Fatalf("GET bob %s after SIGKILL (TTL %s): %v %v; want offline", time.Since(killed), ttl, u, err)
	}
	u, err = g2.presenceOf(t, carol)
	if err != nil || !online(u) || conns(u) != 1 {
		t.Fatalf("GET carol after SIGKILL: %v %v; want online with her g2 connection", u, err)
	}
	w.waitEvent(ttl+hb+3*time.Second, bob, "offline after SIGKILL", func(u map[string]any) bool { return !online(u) })
	took := time.Since(killed)
	t.Logf("offline event for a SIGKILLed replica's user after %s (TTL %s + heartbeat %s)", took, ttl, hb)
	if took > ttl+hb+time.Second {
		t.Fatalf("offline event after %s, want within TTL+heartbeat (%s) plus 1s slack", took, ttl+hb)
	}
	w.waitEvent(5*time.Second, carol, "carol down to one connection", func(u map[string]any) bool { return online(u) && conns(u) == 1 })
	// Both survivors went for the dead replica's lease: the change was made
	// once, so the watcher saw one offline event and versions that only grow.
	// (The reaped counter is only logged: on this shared cluster the
	// survivors may also reap leases other tests' killed gateways left.)
	// A duplicate would arrive within a heartbeat.
	poll.Consistently(t, hb, "bob has a single offline event", func() (bool, string) {
		n := 0
		for _, e := range w.events(bob) {
			if !online(e) {
				n++
			}
		}
		return n <= 1, fmt.Sprint(w.events(bob))
	})
	offline := 0
	var prev float64
	for _, e := range w.events(bob) {
		if !online(e) {
			offline++
		}
		v, _ := e["version"].(float64)
		if v <= prev {
			t.Fatalf("bob's versions do not grow: %v", w.events(bob))
		}
		prev = v
	}
	if offline != 1 {
		t.Fatalf("bob: %d offline events, want exactly 1: %v", offline, w.events(bob))
	}
	t.Logf("survivors reaped %v connections", g1.counter(t, reaped)+g2.counter(t, reaped)-before)
}

// Redis trouble on a cluster of the test's own: a master failover is
// survived with the clients connected; a full outage turns /readyz and
// upgrades to 503 while open connections keep working; when Redis returns,
// presence is written again and watchers are told.
func TestGatewaysRideOutRedisTrouble(t *testing.T) {
	cl := startOwnCluster(t)
	auth := "REDIS_PASSWORD_FILE=" + cl.passwordFile
	g1, g2 := startGateway(t, "g1", cl.nodes, auth), startGateway(t, "g2", cl.nodes, auth)
	var ids []string
	var clients []*presenceclient.Client
	var connIDs []string
	for i := range 8 {
		id := uniq(fmt.Sprint("u", i))
		ids = append(ids, id)
		c := connect(t, g1, id)
		clients = append(clients, c)
		connIDs = append(connIDs, connectionID(c))
	}
	w := dialClient(t, g2, uniq("watcher"))
	w.subscribe(ids...)
	allOnline := func(within time.Duration) {
		t.Helper()
		poll.Eventually(t, within, "every user online on g2", func() (bool, string) {
			for _, id := range ids {
				u, err := g2.presenceOf(t, id)
				if err != nil || !online(u) || conns(u) != 1 {
					return false, fmt.Sprintf("%s: %v %v", id, u, err)
				}
			}
			return true, ""
		})
	}
	alive := func() {
		t.Helper()
		for i, c := range clients {
			if err := stillConnected(c, connIDs[i]); err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		if err := w.ping(); err != nil {
			t.Fatalf("watcher: %v", err)
		}
	}
	allOnline(5 * time.Second)

	// Master failover.
	replica := cl.replicaPort(t)
	cl.failover(t, replica)
	alive()
	allOnline(10 * time.Second)
	setStatus(t, clients[0], presenceclient.StatusBusy)
	w.waitEvent(10*time.Second, ids[0], "busy after the failover", func(u map[string]any) bool { return u["status"] == "busy" })

	// The whole cluster down.
	cl.mustRun(t, "stop-all")
	t.Cleanup(func() { _, _ = cl.run("start-all") })
	for _, g := range []*gw{g1, g2} {
		poll.Eventually(t, 10*time.Second, g.name+" /readyz 503", func() (bool, string) {
			code := gatewayproc.Status(g.API + "/readyz")
			return code == http.StatusServiceUnavailable, fmt.Sprint(code)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	late, err := presenceclient.Dial(ctx, presenceclient.Options{URL: g1.WS, UserID: "late", DiscardEvents: true, DialAttempts: 1})
	cancel()
	if late != nil {
		_ = late.Close()
	}
	var refused *presenceclient.Error
	if !errors.As(err, &refused) || refused.HTTPStatus != http.StatusServiceUnavailable {
		t.Fatalf("upgrade during the outage: %v, want 503", err)
	}
	alive()
	nBefore := len(w.events(ids[1]))

	cl.mustRun(t, "start-all")
	for _, g := range []*gw{g1, g2} {
		poll.Eventually(t, 30*time.Second, g.name+" /readyz 200 again", func() (bool, string) {
			code := gatewayproc.Status(g.API + "/readyz")
			return code == http.StatusOK, fmt.Sprint(code)
		})
	}
	allOnline(20 * time.Second)
	w.waitEvent(20*time.Second, ids[1], "online again after the outage", func(u map[string]any) bool {
		return len(w.events(ids[1])) > nBefore && online(u)
	})
	alive()
	for _, g := range []*gw{g1, g2} {
		select {
		case <-g.Exited:
			t.Fatalf("gateway %s exited during the Redis trouble:\n%s", g.name, g.Log.String())
		default:
		}
	}
}

// replicaPort returns the port of a replica node whose master is up.
func (c *ownCluster) replicaPort(t *testing.T) int {
	t.Helper()
	out := c.cli(t, c.base, "cluster", "nodes")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.Contains(f[2], "slave") && !strings.Contains(f[2], "fail") {
			addr := strings.SplitN(f[1], "@", 2)[0]
			p, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
			return p
		}
	}
	t.Fatalf("no replica in:\n%s", out)
	return 0
}

// failover runs CLUSTER FAILOVER on replica until it is promoted (a
// replica not yet in sync accepts the command but cannot complete it).
func (c *ownCluster) failover(t *testing.T, replica int) {
	t.Helper()
	for range 5 {
		poll.Eventually(t, 20*time.Second, fmt.Sprintf("node %d in sync", replica), func() (bool, string) {
			info := c.replication(replica)
			return info["master_link_status"] == "up", fmt.Sprint(info)
		})
		c.cli(t, replica, "cluster", "failover")
		if poll.Within(5*time.Second, func() bool { return strings.HasPrefix(c.cli(t, replica, "role"), "master") }) {
			return
		}
	}
	t.Fatalf("node %d not promoted after 5 CLUSTER FAILOVER attempts", replica)
}

func (c *ownCluster) cli(t *testing.T, port int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-a", c.password, "--no-auth-warning", "-p", strconv.Itoa(port)}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("redis-cli -p %d %v: %v", port, args, err)
	}
	return string(out)
}
