package server_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	presenceclient "github.com/presencekit/presence-operator/client"
	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/gateway/server"
	"github.com/presencekit/presence-operator/internal/poll"
)

// smallBuffers shrinks the server's socket send buffers, so that a client
// that stops reading fills them (and then its send queue) quickly.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(2048)
	}
	return c, err
}

// startSmall starts a gateway with small socket buffers and no practical
// message rate limit, and dials a client with a small receive buffer.
func startSmall(t *testing.T) (*gateway, *client) {
	t.Helper()
	g := start(t, setup{
		cfg:      func(c *config.Config) { c.MessageRate, c.MessageBurst = 100000, 100000 },
		listener: func(l net.Listener) net.Listener { return smallBuffers{l} },
	})
	smallRead := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(2048)
		}
		return c, err
	}}}
	slow, err := g.dialRaw("/?userId=slow", &websocket.DialOptions{HTTPClient: smallRead})
	if err != nil {
		t.Fatal(err)
	}
	slow.expectType("welcome")
	return g, slow
}

// TestSlowConsumerCutOnWriteTimeout: a watcher that reads nothing is cut
// once a write waits the write timeout; its pending events never pile up
// (one per watched user), and nobody else is slowed down.
func TestSlowConsumerCutOnWriteTimeout(t *testing.T) {
	t.Cleanup(server.SetSendTimeouts(500*time.Millisecond, 100*time.Millisecond, time.Second))
	g, slow := startSmall(t)
	slow.send(map[string]any{"type": "subscribe", "userIds": []string{"chatty"}})
	slow.expectType("presence")
	// The slow client (raw: it must stop reading) now stops reading; chatty
	// changes status (and waits for each answer) until the gateway gives up
	// on the slow one.
	chatty := g.connect("chatty", false)
	other := g.connect("other", false)
	otherConn := connectionID(t, other)
	for i := 0; g.counter(g.metrics.SlowConsumerDisconnects) == 0; i++ {
		if i > 20000 {
			t.Fatal("no slow consumer disconnect after 20000 status changes")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := chatty.SetStatus(ctx, []presenceclient.Status{presenceclient.StatusAway, presenceclient.StatusBusy}[i%2], "")
		cancel()
		if err != nil {
			t.Fatalf("status change %d: %v", i, err)
		}
	}
	poll.Eventually(t, 5*time.Second, "the slow consumer's disconnection counted", func() (bool, string) {
		return g.counter(g.metrics.DisconnectionsTotal.WithLabelValues("slow_consumer")) == 1, ""
	})
	if g.counter(g.metrics.EventsCoalescedTotal) == 0 {
		t.Fatal("events_coalesced_total is 0: the slow watcher's events were queued one by one")
	}
	// Nobody else was slowed down or dropped.
	stillConnected(t, other, otherConn)
}

// TestSlowConsumerCutOnByteBound: a client that asks and never reads is
// cut with 1008 once its queued answers pass the byte bound.
func TestSlowConsumerCutOnByteBound(t *testing.T) {
	// The tiny socket buffers make reading slow (a few KB per round trip):
	// give the client time to read up to the close frame.
	t.Cleanup(server.SetSendTimeouts(10*time.Second, time.Second, 10*time.Second))
	g, slow := startSmall(t)
	query := `{"type":"query","userIds":["` + strings.Join(idList("someone-with-a-long-user-id-", 100), `","`) + `"]}`
	for i := 0; g.counter(g.metrics.SlowConsumerDisconnects) == 0; i++ {
		if i > 2000 {
			t.Fatal("no slow consumer disconnect after 2000 unread answers of 100 users")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := slow.c.Write(ctx, websocket.MessageText, []byte(query))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	slow.expectClose(websocket.StatusPolicyViolation, "slow consumer")
}

// TestManySmallAnswersAreNotSlow: the bound is in bytes, not frames: a
// client that pipelines 400 pings before reading any pong gets them all.
func TestManySmallAnswersAreNotSlow(t *testing.T) {
	g, c := startSmall(t)
	ping := `{"type":"ping","id":"` + strings.Repeat("p", 100) + `"}`
	for range 400 {
		c.sendText(ping)
	}
	for i := range 400 {
		if m := c.read(); m["type"] != "pong" {
			t.Fatalf("answer %d: %v, want a pong", i, m)
		}
	}
	if got := g.counter(g.metrics.SlowConsumerDisconnects); got != 0 {
		t.Fatalf("slow_consumer_disconnects_total = %v", got)
	}
}
