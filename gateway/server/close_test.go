package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/gateway/server"
	"github.com/presencekit/presence-operator/internal/poll"
)

func TestOversizedFrameCloses1009(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.MaxPayloadBytes = 256 }})
	c := g.dialWelcome("u1")
	// Exactly the limit is fine (a bad_request, as it is no valid frame).
	c.sendText(strings.Repeat("x", 256))
	c.expectError("bad_request")
	c.sendText(`{"type":"ping","pad":"` + strings.Repeat("x", 300) + `"}`)
	c.expectClose(websocket.StatusMessageTooBig, "")
	poll.Eventually(t, 5*time.Second, "disconnection counted", func() (bool, string) {
		n := g.counter(g.metrics.DisconnectionsTotal.WithLabelValues("message_too_big"))
		return n == 1, fmt.Sprintf("message_too_big disconnections = %v", n)
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
	// The busy client keeps pinging past the idle timeout and stays.
	poll.Consistently(t, 600*time.Millisecond, "the busy client's pings answered", func() (bool, string) {
		busy.sendText("ping")
		_, b, err := busy.readRaw()
		return err == nil && string(b) == "pong", fmt.Sprintf("busy client: %q %v", b, err)
	})
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
	poll.Consistently(t, 900*time.Millisecond, "the connection kept while it sends control pings", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.c.Ping(ctx)
		cancel()
		if err != nil {
			return false, fmt.Sprintf("control ping: %v", err)
		}
		select {
		case err := <-readErr:
			return false, fmt.Sprintf("connection ended while pinging: %v", err)
		default:
			return true, ""
		}
	})
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

// TestAnswersArriveBeforeA1008: the answers a client earned before being
// closed for flooding reach it before the close frame: 40 pongs (the
// burst), the 10 rate_limited answers of the error budget, then 1008.
func TestAnswersArriveBeforeA1008(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.MessageRate, c.MessageBurst = 20, 40 }, clock: newFakeClock()})
	c := g.dialWelcome("u1")
	for range 52 {
		c.sendText("ping")
	}
	pongs, limited := 0, 0
	for range 60 {
		typ, b, err := c.readRaw()
		if err != nil {
			var ce websocket.CloseError
			if !asCloseError(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "rate limit") {
				t.Fatalf("after %d pongs and %d rate_limited: %v, want close 1008 rate limit", pongs, limited, err)
			}
			break
		}
		switch {
		case typ == websocket.MessageText && string(b) == "pong":
			pongs++
		case strings.Contains(string(b), `"rate_limited"`):
			limited++
		default:
			t.Fatalf("unexpected frame %q", b)
		}
	}
	if pongs != 40 || limited != 10 {
		t.Fatalf("%d pongs and %d rate_limited answers before the close, want 40 and 10", pongs, limited)
	}
}

// TestAnswersArriveBeforeTooManyErrors: a subscribe followed by 11 junk
// frames gets its snapshot and 10 bad_request answers before the 1008.
func TestAnswersArriveBeforeTooManyErrors(t *testing.T) {
	g := start(t, setup{})
	c := g.dialWelcome("u1")
	c.send(map[string]any{"type": "subscribe", "id": "s", "userIds": []string{"bob"}})
	for range 11 {
		c.sendText("junk")
	}
	if m := c.expectType("presence"); m["id"] != "s" {
		t.Fatalf("snapshot %v", m)
	}
	for range 10 {
		c.expectError("bad_request")
	}
	c.expectClose(websocket.StatusPolicyViolation, "too many bad messages")
}

// rawUpgrade opens a WebSocket connection by hand and returns the TCP
// connection once the 101 is read; the caller then neither reads nor
// writes (a frozen client, or one that never answers a close frame).
func rawUpgrade(t *testing.T, g *gateway, userID string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /?userId=" + userID + " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	// Read the response head byte by byte, so that nothing after it is
	// consumed.
	var head []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := conn.Read(one); err != nil {
			t.Fatalf("reading the 101: %v (so far %q)", err, head)
		}
		head = append(head, one[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 101") {
		t.Fatalf("upgrade answered %q", head)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn
}

// TestFrozenClientGoesOfflineSoon: a client that stops reading and
// writing is closed at the idle timeout, and the wait for its close reply
// is bounded, so it goes offline soon after (not 5 s later).
func TestFrozenClientGoesOfflineSoon(t *testing.T) {
	t.Cleanup(server.SetSendTimeouts(10*time.Second, 100*time.Millisecond, 300*time.Millisecond))
	g := start(t, setup{cfg: func(c *config.Config) { c.IdleTimeout = 300 * time.Millisecond }})
	rawUpgrade(t, g, "frozen")
	online := func(want bool) func() (bool, string) {
		return func() (bool, string) {
			us, err := g.store.Get(t.Context(), []string{"frozen"})
			if err != nil {
				t.Fatal(err)
			}
			return us[0].Online == want, fmt.Sprintf("%+v", us[0])
		}
	}
	// The store records the connection just after the 101.
	poll.Eventually(t, 5*time.Second, "frozen online after its upgrade", online(true))
	// Idle timeout 300ms + a sweep + the 300ms bound on the close: well
	// under 3s; the library alone would wait 5s for the reply.
	poll.Eventually(t, 3*time.Second, "frozen offline", online(false))
}

// TestDrainCutsClientsThatNeverAnswer: at the drain's deadline the TCP
// connections of clients that never answered the close frame are closed,
// before Serve returns.
func TestDrainCutsClientsThatNeverAnswer(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.ShutdownGrace = 2 * time.Second }})
	mute := rawUpgrade(t, g, "mute")
	g.stop()
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	// The welcome and the close frame are there to read, then the end of
	// the connection (not a wait for a TCP close that comes seconds later).
	_ = mute.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.Copy(io.Discard, mute); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the mute client's connection was still open after the drain: %v", err)
	}
}

// TestControlPingFloodIsRateLimited: WebSocket ping frames count against
// MESSAGE_RATE like text frames: past the burst they get no pong but a
// rate_limited answer each, and a client that keeps flooding is closed
// with 1008.
func TestControlPingFloodIsRateLimited(t *testing.T) {
	g := start(t, setup{cfg: func(c *config.Config) { c.MessageRate, c.MessageBurst = 5, 2 }, clock: newFakeClock()})
	c := g.dialWelcome("pinger")
	frames := make(chan []byte, 100)
	ended := make(chan error, 1)
	go func() { // reads frames, and processes the pongs
		for range 1000 {
			_, b, err := c.c.Read(context.Background())
			if err != nil {
				ended <- err
				return
			}
			frames <- b
		}
	}()
	ping := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return c.c.Ping(ctx)
	}
	for i := range 2 {
		if err := ping(5 * time.Second); err != nil {
			t.Fatalf("ping %d within the burst: %v", i, err)
		}
	}
	// The next 11 get no pong: 10 rate_limited answers, then the close.
	pings, cancelPings := context.WithCancel(context.Background())
	defer cancelPings()
	for range 11 {
		go func() { _ = c.c.Ping(pings) }()
	}
	limited := 0
	for {
		select {
		case b := <-frames:
			if !strings.Contains(string(b), `"rate_limited"`) {
				t.Fatalf("unexpected frame %s", b)
			}
			limited++
		case err := <-ended:
			// The frames read before the close are all in the channel.
			for len(frames) > 0 {
				if b := <-frames; strings.Contains(string(b), `"rate_limited"`) {
					limited++
				}
			}
			var ce websocket.CloseError
			if !asCloseError(err, &ce) || ce.Code != websocket.StatusPolicyViolation || limited != 10 {
				t.Fatalf("ended with %v after %d rate_limited answers, want 1008 after 10", err, limited)
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatalf("after %d rate_limited answers: no close within 10s", limited)
		}
	}
}
