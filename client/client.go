// Package client is the Go client of the presence gateway: one connection,
// kept alive, that watches users and reports their presence.
//
// It speaks protocol v1 (docs/protocol.md) with the gateway's own wire types
// (package gateway/protocol):
//   - Dial connects to ws(s)://<gateway>/?userId=<id>[&token=<jwt>] and
//     waits for the welcome frame;
//   - the client sends the text "ping" every heartbeatMs (or
//     Options.PingInterval), and gives up on a gateway it has not heard from
//     for three of those intervals;
//   - after every reconnect it re-sends the whole watchlist (in requests of
//     at most 100 ids) and the status it was asked to keep;
//   - it keeps, per watched user, the state with the highest version and
//     drops older or equal ones (a snapshot and an event may cross);
//   - it calls the token function before each connection and before the
//     token expires (a refresh frame), and reconnects at once with a fresh
//     token after close 4001;
//   - it reconnects after any other close with exponential backoff and equal
//     jitter, reset by the next welcome; after close 1008 (rate limit, bad
//     messages, slow consumer) it waits at least PolicyDelay/2.
//
// Presence, state changes and errors not tied to a call arrive on Events.
// The JavaScript client, clients/js, behaves the same way.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/protocol"
)

// User is one user's presence, as the gateway sends it.
type User = protocol.User

// Welcome is the first frame of every connection.
type Welcome = protocol.Welcome

// Status is a user's status.
type Status = presence.Status

// The statuses a user can set (gateways may know more: SetStatus sends any).
const (
	StatusOnline = presence.StatusOnline
	StatusAway   = presence.StatusAway
	StatusBusy   = presence.StatusBusy
	// StatusInvisible shows the user offline to everybody while it stays
	// connected (docs/protocol.md, "Invisible").
	StatusInvisible = presence.StatusInvisible
)

// Close codes the client treats specially.
const (
	// CloseTokenExpired closes a connection whose token expired: the client
	// gets a fresh token and reconnects at once.
	CloseTokenExpired = 4001
	// ClosePolicyViolation closes a connection past the message rate, the
	// error budget or the send queue: the client waits at least
	// PolicyDelay/2 before it comes back.
	ClosePolicyViolation = 1008
)

// Options configure a Client. URL, and UserID or Token, are required.
type Options struct {
	// URL is the gateway: ws://, wss://, http:// or https:// (turned into ws or wss).
	URL string
	// UserID is this connection's user. With a Token it may be left empty:
	// the token's sub is the user.
	UserID string
	// Token returns a fresh JWT: it is called before each connection and
	// before the current token expires.
	Token func(ctx context.Context) (string, error)
	// Watch is the watchlist to start with.
	Watch []string
	// Status and StatusText, when Status is set, are set on every connection.
	Status     Status
	StatusText string
	// RequestTimeout bounds a request whose context has no deadline (default 10s).
	RequestTimeout time.Duration
	// BackoffBase and BackoffCap shape the reconnect delays: the ceiling
	// doubles from BackoffBase (default 500ms) up to BackoffCap (default
	// 30s), and each delay is drawn from [ceiling/2, ceiling].
	BackoffBase, BackoffCap time.Duration
	// PolicyDelay: after close 1008 the next attempt waits at least half of
	// it (default BackoffCap).
	PolicyDelay time.Duration
	// RefreshAt is the fraction of a token's remaining lifetime after which
	// it is refreshed (default 0.8).
	RefreshAt float64
	// EventBuffer is the capacity of the Events channel (default 256, at
	// least 8). While
	// it is full the client stops reading from the gateway, which closes a
	// connection that falls too far behind (1008 slow consumer).
	EventBuffer int
	// DiscardEvents drops every event instead (for clients that only make
	// requests, such as load generators).
	DiscardEvents bool
	// DialOptions are passed to websocket.Dial (an HTTP client, headers).
	DialOptions *websocket.DialOptions
	// DialAttempts, when above 0, makes Dial give up after that many failed
	// attempts instead of retrying until its context ends (a load tool that
	// counts failed connects). Reconnects after Dial are not affected.
	DialAttempts int
	// PingInterval replaces the welcome's heartbeatMs as the interval of the
	// keep-alive ping (a load tool that sets its own rate). A gateway closes
	// a connection it has not heard from for IDLE_TIMEOUT: keep it below.
	PingInterval time.Duration
	// Rand is the jitter's random source, in [0, 1) (default math/rand/v2).
	Rand func() float64
}

func (o *Options) defaults() error {
	if o.URL == "" {
		return errors.New("client: Options.URL is required (ws://host:port/)")
	}
	if o.UserID == "" && o.Token == nil {
		return errors.New("client: Options.UserID or Options.Token is required")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return fmt.Errorf("client: URL %q: %w", o.URL, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("client: URL %q: the scheme must be ws, wss, http or https", o.URL)
	}
	if o.UserID != "" {
		if err := protocol.ValidateUserID(o.UserID); err != nil {
			return fmt.Errorf("client: UserID %q: %w", o.UserID, err)
		}
	}
	for _, id := range o.Watch {
		if err := protocol.ValidateUserID(id); err != nil {
			return fmt.Errorf("client: Watch %q: %w", id, err)
		}
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffCap <= 0 {
		o.BackoffCap = 30 * time.Second
	}
	if o.PolicyDelay <= 0 {
		o.PolicyDelay = o.BackoffCap
	}
	if o.RefreshAt <= 0 || o.RefreshAt >= 1 {
		o.RefreshAt = 0.8
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 256
	}
	o.EventBuffer = max(o.EventBuffer, 8)
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return nil
}

// Client is one connection to a presence gateway, kept alive, with a
// watchlist. Its methods are safe for concurrent use.
type Client struct {
	o      Options
	events chan Event
	done   chan struct{} // closed by Close
	ended  chan struct{} // closed when the run loop has returned

	closeOnce sync.Once
	cancelRun context.CancelFunc

	mu      sync.Mutex
	state   State
	sess    *session // the open connection, nil between connections
	nextID  int64
	watch   []string            // the watchlist, in the order added
	watched map[string]struct{} // the same, as a set
	book    map[string]held     // the newest state of each watched user
	epoch   int                 // bumped by every welcome: a new connection's snapshot wins
	status  *statusWanted       // the status to keep across reconnects
}

type held struct {
	user  User
	epoch int
}

type statusWanted struct {
	status Status
	text   string
}

// Dial connects to the gateway and returns once the welcome frame came, or
// with an error: when ctx ends first, or at once when the gateway refuses the
// upgrade for good (400, 401, 403: an *Error with its HTTP status). Failures
// that may pass (a gateway draining or full, 503; no answer) are retried with
// backoff until ctx ends. Afterwards the client reconnects by itself until
// Close.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	c := &Client{
		o: o, events: make(chan Event, o.EventBuffer), done: make(chan struct{}), ended: make(chan struct{}),
		watched: make(map[string]struct{}), book: make(map[string]held), nextID: 1,
	}
	for _, id := range o.Watch {
		c.addWatch(id)
	}
	if o.Status != "" {
		c.status = &statusWanted{status: o.Status, text: o.StatusText}
	}
	var (
		ws      *websocket.Conn
		welcome Welcome
		token   string
	)
	for attempt := 0; ; attempt++ {
		c.note(StateEvent{State: StateConnecting, Attempt: attempt})
		var err error
		ws, welcome, token, err = c.open(ctx)
		if err == nil {
			break
		}
		var refused *Error
		if errors.As(err, &refused) && refused.HTTPStatus >= 400 && refused.HTTPStatus < 500 {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: dial %s: %w (last attempt: %w)", o.URL, ctx.Err(), err)
		}
		if o.DialAttempts > 0 && attempt+1 >= o.DialAttempts {
			return nil, err
		}
		delay := c.backoff(attempt, 0)
		c.note(StateEvent{State: StateWaiting, Attempt: attempt, Delay: delay, Err: err})
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("client: dial %s: %w (last attempt: %w)", o.URL, ctx.Err(), err)
		case <-time.After(delay):
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancelRun = cancel
	first := c.startSession(runCtx, ws, welcome, token)
	go c.run(runCtx, first)
	return c, nil
}

// Events delivers presence changes, state changes and errors not tied to a
// call (*PresenceEvent, *StaleEvent, *StateEvent, *WelcomeEvent,
// *ErrorEvent). Read it on a goroutine of its own; it is closed by Close.
func (c *Client) Events() <-chan Event { return c.events }

// State is the connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Welcome returns the welcome frame of the open connection.
func (c *Client) Welcome() (Welcome, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return Welcome{}, false
	}
	return c.sess.welcome, true
}

// Watchlist returns the watched user ids, in the order added.
func (c *Client) Watchlist() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.watch)
}

// Get returns the newest known state of a watched user.
func (c *Client) Get(userID string) (User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.book[userID]
	return h.user, ok
}

// Close closes the connection, stops reconnecting, fails the calls in
// flight with ErrClosed, and closes Events.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.cancelRun()
		<-c.ended
		c.note(StateEvent{State: StateClosed, Code: int(websocket.StatusNormalClosure), Reason: "client closed"})
		close(c.events)
	})
	return nil
}

// buildURL is the upgrade URL of one attempt.
func (c *Client) buildURL(token string) (string, error) {
	u, err := url.Parse(c.o.URL)
	if err != nil {
		return "", fmt.Errorf("client: URL %q: %w", c.o.URL, err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("client: URL %q: the scheme must be ws, wss, http or https", c.o.URL)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	q := u.Query()
	if c.o.UserID != "" {
		q.Set("userId", c.o.UserID)
	}
	if token != "" {
		q.Set("token", token)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// backoff is the delay before reconnect attempt number attempt (0 first),
// after a connection that ended with close code.
func (c *Client) backoff(attempt, code int) time.Duration {
	d := BackoffDelay(attempt, c.o.BackoffBase, c.o.BackoffCap, c.o.Rand)
	if code == ClosePolicyViolation {
		d = max(d, BackoffDelay(0, c.o.PolicyDelay, c.o.PolicyDelay, c.o.Rand))
	}
	return d
}

// BackoffDelay is the reconnect delay for attempt (0 first): the ceiling
// doubles from base up to capDelay, and the delay is drawn from [ceiling/2,
// ceiling] ("equal jitter"), so that a gateway restart does not bring every
// client back at once, yet none comes back immediately. random returns a
// number in [0, 1).
func BackoffDelay(attempt int, base, capDelay time.Duration, random func() float64) time.Duration {
	ceiling := capDelay
	if attempt < 30 {
		ceiling = min(capDelay, base<<max(attempt, 0))
	}
	return ceiling/2 + time.Duration(random()*float64(ceiling/2))
}

func (c *Client) addWatch(id string) bool {
	if _, ok := c.watched[id]; ok {
		return false
	}
	c.watched[id] = struct{}{}
	c.watch = append(c.watch, id)
	return true
}

func (c *Client) removeWatch(ids []string) {
	for _, id := range ids {
		if _, ok := c.watched[id]; !ok {
			continue
		}
		delete(c.watched, id)
		delete(c.book, id)
		c.watch = slices.DeleteFunc(c.watch, func(w string) bool { return w == id })
	}
}

// chunks splits ids into requests the gateway accepts.
func chunks(ids []string) [][]string {
	var out [][]string
	for len(ids) > protocol.MaxIDsPerRequest {
		out = append(out, ids[:protocol.MaxIDsPerRequest])
		ids = ids[protocol.MaxIDsPerRequest:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

// validIDs checks ids and removes duplicates, keeping the order.
func validIDs(what string, ids []string) ([]string, error) {
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := protocol.ValidateUserID(id); err != nil {
			return nil, fmt.Errorf("client: %s %q: %w", what, id, err)
		}
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out, nil
}

// emit delivers an event, waiting while the channel is full (until Close).
func (c *Client) emit(ev Event) {
	if c.o.DiscardEvents {
		return
	}
	select {
	case c.events <- ev:
	case <-c.done:
	}
}

func (c *Client) setState(ev StateEvent) {
	c.mu.Lock()
	c.state = ev.State
	c.mu.Unlock()
	c.emit(&ev)
}

// note sets the state and delivers its event only if there is room: during
// Dial, which nobody reads Events for yet, and at Close, which closes the
// channel right after.
func (c *Client) note(ev StateEvent) {
	c.mu.Lock()
	c.state = ev.State
	c.mu.Unlock()
	// Two places stay free for the open state and the welcome that end Dial.
	if c.o.DiscardEvents || len(c.events) >= cap(c.events)-2 {
		return
	}
	select {
	case c.events <- &ev:
	default:
	}
}

// tokenExpiry returns a JWT's exp (not verified), or false.
func tokenExpiry(token string) (time.Time, bool) {
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	payload, ok := jwtPayload(token)
	if !ok || json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(f * 1000)), true
}
