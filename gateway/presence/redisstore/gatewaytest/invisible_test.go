package gatewaytest

import (
	"syscall"
	"testing"
	"time"

	presenceclient "github.com/presencekit/presence-operator/client"
)

// TestInvisibleAcrossReplicas: two gateway processes on one Redis Cluster.
// A watcher on g2 sees g1's user go offline when it turns invisible, and
// online when it comes back; the user's connection on g2 starts invisible;
// when g1 is killed while the user hides there, its reaping publishes
// nothing about the user and lastSeen stays the moment it hid.
func TestInvisibleAcrossReplicas(t *testing.T) {
	nodes := testNodes(t)
	g1, g2 := startGateway(t, "g1", nodes), startGateway(t, "g2", nodes)
	ivy, marker := uniq("ivy"), uniq("marker")
	w := dialClient(t, g2, uniq("watcher"))
	w.subscribe(ivy, marker)

	a := connect(t, g1, ivy)
	w.waitEvent(5*time.Second, ivy, "online from g1", online)
	setStatus(t, a, presenceclient.StatusInvisible)
	hid := w.waitEvent(5*time.Second, ivy, "offline on going invisible", func(u map[string]any) bool { return !online(u) })
	checkHidden(t, "the event", hid, hid)
	for _, g := range []*gw{g1, g2} {
		u, err := g.presenceOf(t, ivy)
		if err != nil {
			t.Fatal(err)
		}
		checkHidden(t, "GET /v1/presence on "+g.name, u, hid)
	}

	// A second connection, on g2, starts invisible.
	b := connect(t, g2, ivy)
	if err := stillConnected(b, connectionID(b)); err != nil {
		t.Fatal(err)
	}
	u, err := g1.presenceOf(t, ivy)
	if err != nil {
		t.Fatal(err)
	}
	checkHidden(t, "GET on g1 with a second connection on g2", u, hid)

	setStatus(t, b, presenceclient.StatusAway)
	w.waitEvent(5*time.Second, ivy, "online again, from g2", func(u map[string]any) bool {
		return online(u) && u["status"] == "away" && conns(u) == 2
	})
	_ = b.Close()
	w.waitEvent(5*time.Second, ivy, "down to the g1 connection", func(u map[string]any) bool { return online(u) && conns(u) == 1 })

	// Hidden on g1, and g1 dies.
	setStatus(t, a, presenceclient.StatusInvisible)
	hid2 := w.waitEvent(5*time.Second, ivy, "offline on going invisible again", func(u map[string]any) bool {
		return !online(u) && u["version"].(float64) > hid["version"].(float64)
	})
	connect(t, g1, marker)
	w.waitEvent(5*time.Second, marker, "marker online", online)
	if err := g1.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-g1.Exited
	w.waitEvent(ttl+hb+5*time.Second, marker, "marker offline after g1 died", func(u map[string]any) bool { return !online(u) })
	u, err = g2.presenceOf(t, ivy)
	if err != nil {
		t.Fatal(err)
	}
	checkHidden(t, "GET after g1 died", u, hid2)
	for _, e := range w.events(ivy) {
		if e["version"].(float64) > hid2["version"].(float64) {
			t.Fatalf("an event about the invisible user of a dead replica: %v", w.events(ivy))
		}
	}
}

// checkHidden fails unless u shows offline with the lastSeen and version
// it had when the user went invisible.
func checkHidden(t *testing.T, what string, u, hid map[string]any) {
	t.Helper()
	if online(u) || u["status"] != "offline" || conns(u) != 0 || u["lastSeen"] != hid["lastSeen"] || u["version"] != hid["version"] {
		t.Fatalf("%s: %v, want offline with lastSeen %v and version %v", what, u, hid["lastSeen"], hid["version"])
	}
}
