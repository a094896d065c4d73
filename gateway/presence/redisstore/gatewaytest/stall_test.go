package gatewaytest

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/internal/poll"
)

// A gateway stopped (SIGSTOP) for longer than the TTL keeps its clients'
// TCP connections, but their presence expires (and, on Redis, another
// replica reaps it). After SIGCONT the heartbeat must re-register every
// open connection and announce its user online again, and status writes
// must work again. Run on Redis with the watcher on a second replica, on
// Redis with a single replica, and on the embedded store.
func TestStalledGatewayReRegistersItsConnections(t *testing.T) {
	nodes := testNodes(t)
	for _, tc := range []struct {
		name string
		env  []string // the victim's store
		two  bool     // the watcher on a second replica, which reaps the victim
	}{
		{"redis-two-replicas", []string{"REDIS_NODES=" + nodes}, true},
		{"redis-one-replica", []string{"REDIS_NODES=" + nodes}, false},
		{"embedded-store", []string{"REDIS_NODES="}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim := startGateway(t, "victim", nodes, tc.env...)
			watcherGW := victim
			if tc.two {
				watcherGW = startGateway(t, "g2", nodes)
			}
			alice := uniq("alice")
			w := dialClient(t, watcherGW, uniq("watcher"))
			w.subscribe(alice)
			// A raw connection, not the Go client: the stall is longer than
			// three heartbeats, after which the client would give the gateway
			// up and reconnect; the test is about this connection surviving.
			a := dialClient(t, victim, alice)
			w.waitEvent(5*time.Second, alice, "online", online)

			if err := victim.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			stopped := true
			t.Cleanup(func() {
				if stopped {
					_ = victim.Cmd.Process.Signal(syscall.SIGCONT)
				}
			})
			if tc.two {
				// The stall lasts until the survivor has told the watcher
				// that alice is offline: her presence was reaped while her
				// socket stayed open.
				w.waitEvent(ttl+hb+5*time.Second, alice, "offline during the stall", func(u map[string]any) bool { return !online(u) })
			} else {
				// Nothing else runs to observe it: the stall itself, longer
				// than the TTL, is what is under test.
				time.Sleep(ttl + 2*hb)
			}
			if err := victim.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			stopped = false

			// Within a heartbeat (plus slack for a loaded machine) the last
			// event says online, and reads agree.
			w.waitEvent(ttl+5*time.Second, alice, "online again after SIGCONT", func(map[string]any) bool {
				evs := w.events(alice)
				return len(evs) > 0 && online(evs[len(evs)-1]) && conns(evs[len(evs)-1]) == 1
			})
			if err := a.ping(); err != nil {
				t.Fatalf("alice's connection after the stall: %v", err)
			}
			// Polled: with one replica nobody announced alice offline during
			// the stall, so the last event says online from before it, and
			// the re-registration may still be under way.
			poll.Eventually(t, ttl+5*time.Second, "GET alice online with 1 connection after the stall", func() (bool, string) {
				u, err := watcherGW.presenceOf(t, alice)
				return err == nil && online(u) && conns(u) == 1, fmt.Sprint(u, err)
			})
			a.send(map[string]any{"type": "status", "id": "after-stall", "status": "busy"})
			reply := a.waitFrame("status reply", func(f map[string]any) bool { return f["id"] == "after-stall" })
			if reply["type"] != "ok" {
				t.Fatalf("status after the stall: %v, want ok", reply)
			}
			w.waitEvent(5*time.Second, alice, "busy after the stall", func(u map[string]any) bool { return u["status"] == "busy" })
			var prev float64
			for _, e := range w.events(alice) {
				v, _ := e["version"].(float64)
				if v <= prev {
					t.Fatalf("versions do not grow: %v", w.events(alice))
				}
				prev = v
			}
			t.Logf("alice's events: %s", fmt.Sprint(w.events(alice)))
		})
	}
}
