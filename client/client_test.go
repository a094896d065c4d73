package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/client"
)

// The client against the real gateway binary, each test on a gateway of its
// own (embedded store); the same behaviours as clients/js/test/client.test.js.

func TestWatchesUsersSnapshotThenChanges(t *testing.T) {
	g := startGateway(t)
	alice := dial(t, client.Options{URL: g.url(), UserID: "alice", Watch: []string{"bob"}})
	events := record(t, alice)
	if w, ok := alice.Welcome(); !ok || w.UserID != "alice" {
		t.Fatalf("Welcome() = %+v, %v; want alice's", w, ok)
	}
	eventually(t, 10*time.Second, "bob's snapshot", func() bool { _, ok := alice.Get("bob"); return ok })
	if u, _ := alice.Get("bob"); u.Online {
		t.Fatalf("bob %+v, want offline", u)
	}
	// Events reach the recorder on its own goroutine: wait for them.
	eventually(t, 10*time.Second, "bob's snapshot event", func() bool { return len(all[*client.PresenceEvent](events)) > 0 })
	if p := all[*client.PresenceEvent](events); !p[0].Snapshot {
		t.Fatalf("first presence event %+v, want a snapshot", p[0])
	}

	bob := dial(t, client.Options{URL: g.url(), UserID: "bob"})
	eventually(t, 10*time.Second, "alice sees bob online", online(alice, "bob", ""))
	ctx := context.Background()
	if err := bob.SetStatus(ctx, client.StatusBusy, "in a call"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice sees bob busy", online(alice, "bob", client.StatusBusy))
	if u, _ := alice.Get("bob"); u.Text != "in a call" {
		t.Fatalf("bob's text %q", u.Text)
	}
	var last *client.PresenceEvent
	eventually(t, 10*time.Second, "the busy event", func() bool {
		p := all[*client.PresenceEvent](events)
		last = p[len(p)-1]
		return last.User.Status == client.StatusBusy
	})
	if last.Snapshot || last.Previous == nil || last.Previous.Status != client.StatusOnline {
		t.Fatalf("last event %+v, want a change from online", last)
	}

	_ = bob.Close()
	eventually(t, 10*time.Second, "alice sees bob offline", func() bool { u, _ := alice.Get("bob"); return !u.Online })
	if err := alice.Unsubscribe(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if w := alice.Watchlist(); len(w) != 0 {
		t.Fatalf("watchlist %v after unsubscribe", w)
	}
	if _, ok := alice.Get("bob"); ok {
		t.Fatal("bob still held after unsubscribe")
	}
}

func TestSplitsRequestsIntoHundredIDs(t *testing.T) {
	g := startGateway(t)
	c := dial(t, client.Options{URL: g.url(), UserID: "watcher", DiscardEvents: true})
	ctx := context.Background()
	// One request of 250 ids would be refused (too_many_ids).
	watch := ids("s", 250)
	if err := c.Subscribe(ctx, watch...); err != nil {
		t.Fatal(err)
	}
	for _, id := range watch {
		if _, ok := c.Get(id); !ok {
			t.Fatalf("no snapshot of %s after Subscribe returned", id)
		}
	}
	asked := ids("q", 150)
	users, err := c.Query(ctx, asked...)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(users))
	for i, u := range users {
		got[i] = u.UserID
	}
	if !slices.Equal(got, asked) {
		t.Fatalf("Query answered %d users %v..., want the 150 asked in order", len(got), got[:min(3, len(got))])
	}
}

func TestASubscribeRefusedForGoodLeavesTheWatchlist(t *testing.T) {
	g := startGateway(t)
	c := dial(t, client.Options{URL: g.url(), UserID: "greedy", DiscardEvents: true})
	// A connection watches at most 1000 users: the eleventh request is refused.
	err := c.Subscribe(context.Background(), ids("u", 1001)...)
	var e *client.Error
	if !errors.As(err, &e) || e.Code != "too_many_subscriptions" || !slices.Equal(e.UserIDs, []string{"u1000"}) {
		t.Fatalf("Subscribe of 1001: %v, want too_many_subscriptions for [u1000]", err)
	}
	if w := c.Watchlist(); len(w) != 1000 || slices.Contains(w, "u1000") {
		t.Fatalf("watchlist of %d, want the 1000 accepted", len(w))
	}
}

func TestReconnectsAcrossARestartWithWatchlistAndStatus(t *testing.T) {
	g := startGateway(t)
	watch := append(ids("w", 150), "bob")
	alice := dial(t, client.Options{URL: g.url(), UserID: "alice", Watch: watch,
		BackoffBase: 50 * time.Millisecond, BackoffCap: 500 * time.Millisecond})
	events := record(t, alice)
	if err := alice.SetStatus(context.Background(), client.StatusAway, "lunch"); err != nil {
		t.Fatal(err)
	}
	// A status the gateway refuses is not the one kept.
	var refused *client.Error
	if err := alice.SetStatus(context.Background(), "sleeping", ""); !errors.As(err, &refused) || refused.Code != "bad_request" {
		t.Fatalf("SetStatus(sleeping): %v, want bad_request", err)
	}
	eventually(t, 10*time.Second, "the first snapshot", func() bool { _, ok := alice.Get("w149"); return ok })
	snapshots := func() int {
		n := 0
		for _, p := range all[*client.PresenceEvent](events) {
			if p.User.UserID == "w149" {
				n++
			}
		}
		return n
	}
	before := snapshots()

	g.restart() // SIGTERM (the drain closes with 1001), then a new process on the same port

	eventually(t, 20*time.Second, "a second welcome", func() bool { return len(all[*client.WelcomeEvent](events)) == 2 })
	var waited bool
	for _, s := range all[*client.StateEvent](events) {
		waited = waited || s.State == client.StateWaiting
	}
	if !waited {
		t.Error("no waiting state between the two connections")
	}
	// The new process knows nothing: only a re-sent subscribe brings
	// snapshots and events, and only a re-sent status shows alice away.
	eventually(t, 10*time.Second, "w149's snapshot from the new process", func() bool { return snapshots() > before })
	_ = dial(t, client.Options{URL: g.url(), UserID: "bob"})
	eventually(t, 10*time.Second, "alice sees bob online after the restart", online(alice, "bob", ""))
	eventually(t, 10*time.Second, "alice's status restored", func() bool {
		u := g.presence("alice")
		return len(u) == 1 && u[0].Status == client.StatusAway && u[0].Text == "lunch"
	})
}

const secret = "go-client-test-secret"

func TestRefreshesTheTokenBeforeItExpires(t *testing.T) {
	g := startGateway(t, "AUTH_JWT_SECRET="+secret, "AUTH_JWT_LEEWAY=0s")
	expiries := make(chan time.Time, 100)
	token := func(context.Context) (string, error) {
		exp := time.Now().Add(3 * time.Second).Truncate(time.Second)
		expiries <- exp
		return signHS256(t, map[string]any{"sub": "alice", "exp": exp.Unix()}, secret), nil
	}
	// No UserID: the token's sub is the user.
	c := dial(t, client.Options{URL: g.url(), Token: token})
	events := record(t, c)
	if w, _ := c.Welcome(); w.UserID != "alice" {
		t.Fatalf("welcome for %q, want alice", w.UserID)
	}
	first := <-expiries
	// The gateway closes a connection at exp + leeway (checked every 250 ms).
	eventually(t, 10*time.Second, "the first token's expiry to pass", func() bool { return time.Now().After(first.Add(time.Second)) })
	if len(expiries) == 0 {
		t.Fatal("the token function was not called again before the first token expired")
	}
	if w := all[*client.WelcomeEvent](events); len(w) != 1 {
		t.Errorf("%d welcomes: the connection was replaced", len(w))
	}
	for _, s := range all[*client.StateEvent](events) {
		if s.State == client.StateWaiting {
			t.Errorf("state event %+v: the connection was lost", s)
		}
	}
	if e := all[*client.ErrorEvent](events); len(e) > 0 {
		t.Errorf("error events %v", e[0].Err)
	}
	users, err := c.Query(context.Background(), "alice")
	if err != nil || !users[0].Online {
		t.Fatalf("Query(alice) = %+v, %v; want online", users, err)
	}
}

func TestCloseTokenExpiredGetsAFreshTokenAndReconnectsAtOnce(t *testing.T) {
	g := startGateway(t, "AUTH_JWT_SECRET="+secret, "AUTH_JWT_LEEWAY=0s")
	var c atomic.Pointer[client.Client]
	// Tokens for a connection are good; tokens for a refresh (asked while
	// the connection is open) are refused, so the gateway closes with 4001.
	token := func(context.Context) (string, error) {
		key := secret
		if cl := c.Load(); cl != nil && cl.State() == client.StateOpen {
			key = "not-the-secret"
		}
		return signHS256(t, map[string]any{"sub": "carol", "exp": time.Now().Add(2 * time.Second).Unix()}, key), nil
	}
	c.Store(dial(t, client.Options{URL: g.url(), UserID: "carol", Token: token}))
	events := record(t, c.Load())
	eventually(t, 15*time.Second, "a second welcome", func() bool { return len(all[*client.WelcomeEvent](events)) == 2 })
	var invalidToken bool
	for _, e := range all[*client.ErrorEvent](events) {
		var ge *client.Error
		invalidToken = invalidToken || (errors.As(e.Err, &ge) && ge.Code == "invalid_token")
	}
	if !invalidToken {
		t.Error("no invalid_token error for the refused refresh")
	}
	var closes []*client.StateEvent
	for _, s := range all[*client.StateEvent](events) {
		if s.State == client.StateWaiting {
			closes = append(closes, s)
		}
	}
	if len(closes) != 1 || closes[0].Code != client.CloseTokenExpired || closes[0].Delay != 0 {
		t.Fatalf("waiting states %+v, want one after 4001 with no delay", closes)
	}
}

func TestClosePolicyViolationBacksOffAtLeastHalfThePolicyDelay(t *testing.T) {
	g := startGateway(t, "MESSAGE_RATE=0.5", "MESSAGE_BURST=2")
	c := dial(t, client.Options{URL: g.url(), UserID: "spammer",
		BackoffBase: 20 * time.Millisecond, BackoffCap: 100 * time.Millisecond, PolicyDelay: 2 * time.Second})
	events := record(t, c)
	// Past the rate each frame costs an error (rate_limited, without the id:
	// the gateway does not read such frames); past the error budget it
	// closes with 1008, and the requests still waiting fail.
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			_, err := c.Query(context.Background(), "x"+string(rune('a'+i)))
			errs <- err
		}()
	}
	disconnected := 0
	for range 20 {
		if err := <-errs; errors.Is(err, client.ErrDisconnected) {
			disconnected++
		}
	}
	if disconnected == 0 {
		t.Error("no request failed with ErrDisconnected")
	}
	var closed *client.StateEvent
	eventually(t, 10*time.Second, "the 1008 close", func() bool {
		for _, s := range all[*client.StateEvent](events) {
			if s.State == client.StateWaiting {
				closed = s
				return true
			}
		}
		return false
	})
	if closed.Code != client.ClosePolicyViolation || closed.Delay < time.Second {
		t.Fatalf("waiting %+v: want code 1008 and at least 1s (the plain backoff is at most 20ms)", closed)
	}
	var rateLimited bool
	for _, e := range all[*client.ErrorEvent](events) {
		var ge *client.Error
		rateLimited = rateLimited || (errors.As(e.Err, &ge) && ge.Code == "rate_limited")
	}
	if !rateLimited {
		t.Error("no rate_limited error event")
	}
	eventually(t, 10*time.Second, "the reconnect", func() bool { return len(all[*client.WelcomeEvent](events)) == 2 })
}

func TestQueryTimesOutWhenTheGatewayDoesNotAnswer(t *testing.T) {
	g := startGateway(t)
	c := dial(t, client.Options{URL: g.url(), UserID: "asker", DiscardEvents: true})
	g.freeze()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := c.Query(ctx, "bob")
	cancel()
	g.thaw()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Query of a stopped gateway: %v, want a deadline error", err)
	}
	// The late answer is ignored; the next query gets its own.
	users, err := c.Query(context.Background(), "bob")
	if err != nil || len(users) != 1 || users[0].UserID != "bob" {
		t.Fatalf("Query(bob) = %+v, %v", users, err)
	}
	if s := c.State(); s != client.StateOpen {
		t.Fatalf("state %s, want open", s)
	}
}

func TestDropsAnEventWhoseVersionIsNotNewer(t *testing.T) {
	g := startGateway(t)
	r := startRelay(t, g.url())
	bob := dial(t, client.Options{URL: g.url(), UserID: "bob"})
	alice := dial(t, client.Options{URL: r.url(), UserID: "alice", Watch: []string{"bob"}})
	events := record(t, alice)
	eventually(t, 10*time.Second, "alice sees bob online", online(alice, "bob", ""))

	// bob's "away" event is held back by the relay and delivered after the
	// newer "busy" one, as if the two had come from two replicas.
	r.holdNext(func(text string) bool { return strings.Contains(text, `"status":"away"`) })
	ctx := context.Background()
	if err := bob.SetStatus(ctx, client.StatusAway, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the away event held", func() bool { return r.heldCount() == 1 })
	if err := bob.SetStatus(ctx, client.StatusBusy, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice sees bob busy", online(alice, "bob", client.StatusBusy))
	r.release(t)
	if _, err := alice.Query(ctx, "bob"); err != nil { // answered after the released frame: it has been read
		t.Fatal(err)
	}

	var stale *client.StaleEvent
	eventually(t, 10*time.Second, "a stale event for the away state", func() bool {
		for _, s := range all[*client.StaleEvent](events) {
			if s.User.Status == client.StatusAway {
				stale = s
			}
		}
		return stale != nil
	})
	if stale.User.Version >= stale.Current.Version {
		t.Fatalf("stale event for away: %+v, want one older than the state held", stale)
	}
	if u, _ := alice.Get("bob"); u.Status != client.StatusBusy {
		t.Fatalf("bob held as %s, want busy", u.Status)
	}
	for _, p := range all[*client.PresenceEvent](events) {
		if p.User.Status == client.StatusAway {
			t.Fatalf("the stale state was delivered: %+v", p)
		}
	}
}

func TestDialFailsAtOnceWhenRefusedAndRetriesWhatMayPass(t *testing.T) {
	g := startGateway(t, "AUTH_JWT_SECRET="+secret)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bad := func(context.Context) (string, error) {
		return signHS256(t, map[string]any{"sub": "x", "exp": time.Now().Add(time.Minute).Unix()}, "wrong"), nil
	}
	_, err := client.Dial(ctx, client.Options{URL: g.url(), Token: bad})
	var e *client.Error
	if !errors.As(err, &e) || e.HTTPStatus != 401 || e.Code != "unauthorized" {
		t.Fatalf("Dial with a bad token: %v, want the gateway's 401 unauthorized", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Dial waited for the context instead of failing at once")
	}

	// Nothing listens: Dial retries until its context ends.
	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelShort()
	_, err = client.Dial(short, client.Options{URL: "ws://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/", UserID: "a",
		BackoffBase: 20 * time.Millisecond, BackoffCap: 50 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial with nothing listening: %v, want the context's deadline", err)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		o    client.Options
		want string
	}{
		{client.Options{UserID: "a"}, "URL is required"},
		{client.Options{URL: "ws://x/"}, "UserID or Options.Token"},
		{client.Options{URL: "ws://x/", UserID: "a b"}, `UserID "a b"`},
		{client.Options{URL: "ws://x/", UserID: "a", Watch: []string{"ok", "no way"}}, `Watch "no way"`},
		{client.Options{URL: "ftp://x/", UserID: "a"}, "scheme must be"},
	} {
		_, err := client.Dial(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dial(%+v): %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestBackoffDelayIsEqualJitterUpToTheCap(t *testing.T) {
	base, capDelay := 500*time.Millisecond, 30*time.Second
	for attempt := range 40 {
		ceiling := capDelay
		if attempt < 10 {
			ceiling = min(capDelay, base<<attempt)
		}
		lo := client.BackoffDelay(attempt, base, capDelay, func() float64 { return 0 })
		hi := client.BackoffDelay(attempt, base, capDelay, func() float64 { return 0.999999 })
		if lo != ceiling/2 || hi < ceiling*99/100 || hi > ceiling {
			t.Fatalf("attempt %d: delays [%s, %s], want [%s, %s]", attempt, lo, hi, ceiling/2, ceiling)
		}
	}
}

func TestDialAttemptsBoundsTheRetries(t *testing.T) {
	// Nothing listens, and the backoff is long: with one attempt allowed,
	// Dial returns that attempt's error at once, not the context's.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Dial(ctx, client.Options{URL: "ws://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/", UserID: "a",
		BackoffBase: 5 * time.Second, DialAttempts: 1})
	if err == nil || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("Dial with one attempt and nothing listening: %v, want the attempt's error at once", err)
	}
}

func TestPingIntervalReplacesTheHeartbeat(t *testing.T) {
	// A stand-in gateway that asks for a ping a minute and counts the pings.
	var pings atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = ws.CloseNow() }()
		welcome := `{"type":"welcome","userId":"a","connectionId":"c1","heartbeatMs":60000,"ttlMs":180000}`
		if ws.Write(r.Context(), websocket.MessageText, []byte(welcome)) != nil {
			return
		}
		for {
			_, data, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			if string(data) == "ping" {
				pings.Add(1)
				if ws.Write(r.Context(), websocket.MessageText, []byte("pong")) != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	dial(t, client.Options{URL: srv.URL, UserID: "a", DiscardEvents: true, PingInterval: 50 * time.Millisecond})
	eventually(t, 10*time.Second, "three pings at the client's interval", func() bool { return pings.Load() >= 3 })
}
