package server_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/gateway/config"
)

func TestOversizedFrameCloses1009(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.MaxPayloadBytes = 256 }})
	c := g.dialWelcome("u1")
	// Exactly the limit is fine (a bad_request, as it is no valid frame).
	c.sendText(strings.Repeat("x", 256))
	c.expectError("bad_request")
	c.sendText(`{"type":"ping","pad":"` + strings.Repeat("x", 300) + `"}`)
	c.expectClose(websocket.StatusMessageTooBig, "")
	eventually(t, 5*time.Second, "disconnection counted", func() bool {
		return g.counter(g.metrics.DisconnectionsTotal.WithLabelValues("message_too_big")) == 1
	})
}

func TestBinaryFrameCloses1003(t *testing.T) {
	g := start(t, setup{})
	c := g.dialWelcome("u1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageBinary, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	c.expectClose(websocket.StatusUnsupportedData, "binary")
}

func TestFloodCloses1008(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.MessageRate, c.MessageBurst = 1, 2 }})
	c := g.dialWelcome("u1")
	// 2 allowed, then 10 rate_limited answers (the error budget), then the close.
	for range 13 {
		c.sendText("ping")
	}
	c.expectClose(websocket.StatusPolicyViolation, "rate limit")
}

func TestRepeatedErrorsClose1008(t *testing.T) {
	g := start(t, setup{})
	c := g.dialWelcome("u1")
	for range 11 {
		c.sendText(`{"type":"nope"}`)
	}
	c.expectClose(websocket.StatusPolicyViolation, "too many bad messages")
}

func TestIdleTimeoutCloses1001(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.IdleTimeout = 300 * time.Millisecond }})
	busy := g.dialWelcome("busy")
	idle := g.dialWelcome("idle")
	start := time.Now()
	// The busy client keeps pinging past the idle timeout and stays.
	for time.Since(start) < 600*time.Millisecond {
		busy.sendText("ping")
		if _, b, err := busy.readRaw(); err != nil || string(b) != "pong" {
			t.Fatalf("busy client: %q %v", b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	idle.expectClose(websocket.StatusGoingAway, "idle")
	busy.alive()
}

func TestControlPingsKeepTheConnection(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.IdleTimeout = 300 * time.Millisecond }})
	c := g.dialWelcome("pinger")
	readErr := make(chan error, 1)
	go func() { // processes the pongs; returns when the connection ends
		_, _, err := c.c.Read(context.Background())
		readErr <- err
	}()
	for start := time.Now(); time.Since(start) < 900*time.Millisecond; {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.c.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("control ping: %v", err)
		}
		select {
		case err := <-readErr:
			t.Fatalf("connection ended while pinging: %v", err)
		default:
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Silent from now on: the idle timeout applies.
	select {
	case err := <-readErr:
		if websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("ended with %v, want 1001", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not closed after going silent")
	}
}

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

func TestSlowConsumerCloses1008(t *testing.T) {
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
	slow.send(map[string]any{"type": "subscribe", "userIds": []string{"chatty"}})
	slow.expectType("presence")
	// The slow client now stops reading; chatty changes status until the
	// gateway gives up on the slow one.
	chatty := g.dialWelcome("chatty")
	go func() {
		for {
			if _, _, err := chatty.c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	other := g.dialWelcome("other")
	for i := 0; g.counter(g.metrics.SlowConsumerDisconnects) == 0; i++ {
		if i > 50000 {
			t.Fatal("no slow consumer disconnect after 50000 status changes")
		}
		status := []string{"away", "busy"}[i%2]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := chatty.c.Write(ctx, websocket.MessageText, []byte(`{"type":"status","status":"`+status+`"}`))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	slow.expectClose(websocket.StatusPolicyViolation, "slow consumer")
	// Nobody else was slowed down or dropped.
	other.alive()
}
