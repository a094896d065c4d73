package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/gateway/protocol"
)

const (
	// handshakeTimeout bounds one attempt: dial, upgrade and welcome.
	handshakeTimeout = 10 * time.Second
	// writeTimeout bounds one frame's write (the connection is closed past it).
	writeTimeout = 10 * time.Second
	// readLimit is the largest frame read; a presence frame of 100 users is
	// about 15 KiB.
	readLimit = 1 << 20
)

// session is one open connection, from its welcome to its close.
type session struct {
	ws      *websocket.Conn
	welcome Welcome
	ctx     context.Context // ends with the connection
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the session's goroutines: keep-alive, refresher, restore

	lastHeard atomic.Int64 // unix ns of the last frame from the gateway
	abandoned atomic.Bool  // the keep-alive gave the gateway up

	// Guarded by Client.mu.
	pending map[int64]*call
	token   string

	tokenChanged chan struct{} // Refresh tells the refresher (capacity 1)
}

// call is a request waiting for its answer.
type call struct {
	typ    string
	answer chan answer // capacity 1: the reader never blocks on it
}

type answer struct {
	users []User
	err   error
}

// open makes one attempt: token, upgrade, welcome.
func (c *Client) open(ctx context.Context) (*websocket.Conn, Welcome, string, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var token string
	if c.o.Token != nil {
		var err error
		if token, err = c.o.Token(ctx); err != nil {
			return nil, Welcome{}, "", fmt.Errorf("client: the token function: %w", err)
		}
		if token == "" {
			return nil, Welcome{}, "", errors.New("client: the token function returned an empty token")
		}
	}
	u, err := c.buildURL(token)
	if err != nil {
		return nil, Welcome{}, "", err
	}
	ws, resp, err := websocket.Dial(ctx, u, c.o.DialOptions)
	if resp != nil && resp.Body != nil {
		defer func() { _ = resp.Body.Close() }()
	}
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, Welcome{}, "", refusal(resp)
		}
		return nil, Welcome{}, "", fmt.Errorf("client: dial %s: %w", c.o.URL, err)
	}
	ws.SetReadLimit(readLimit)
	typ, data, err := ws.Read(ctx)
	if err != nil {
		_ = ws.CloseNow()
		return nil, Welcome{}, "", fmt.Errorf("client: waiting for the welcome: %w", err)
	}
	var w Welcome
	if typ != websocket.MessageText || json.Unmarshal(data, &w) != nil || w.Type != "welcome" {
		_ = ws.CloseNow()
		return nil, Welcome{}, "", fmt.Errorf("client: the first frame is not a welcome: %.80q", data)
	}
	return ws, w, token, nil
}

// refusal turns a non-101 upgrade answer into an *Error.
func refusal(resp *http.Response) error {
	e := &Error{HTTPStatus: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode)}
	if resp.Body != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		var b struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &b) == nil && b.Error != "" {
			e.Code, e.Message = b.Error, b.Message
		} else {
			e.Message = strings.TrimSpace(string(body))
		}
	}
	return e
}

// startSession makes ws the open connection and starts its goroutines.
func (c *Client) startSession(runCtx context.Context, ws *websocket.Conn, w Welcome, token string) *session {
	s := &session{ws: ws, welcome: w, pending: make(map[int64]*call), token: token, tokenChanged: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(runCtx)
	s.lastHeard.Store(time.Now().UnixNano())
	c.mu.Lock()
	c.sess = s
	c.epoch++
	c.mu.Unlock()
	c.setState(StateEvent{State: StateOpen})
	c.emit(&WelcomeEvent{Welcome: w})
	s.wg.Add(3)
	go c.keepAlive(s)
	go c.refresher(s)
	go c.restore(s)
	return s
}

// run owns the connection: it serves each session, then reconnects with
// backoff until Close.
func (c *Client) run(ctx context.Context, s *session) {
	defer close(c.ended)
	attempt := 0
	for {
		code, reason := c.serve(s)
		if ctx.Err() != nil {
			return
		}
		var delay time.Duration
		if code != CloseTokenExpired {
			// 4001 is not an overload signal: a fresh token, and back at
			// once. A token function that keeps returning expired tokens
			// fails the upgrade (401), which backs off below.
			delay = c.backoff(attempt, code)
			attempt++
		}
		c.setState(StateEvent{State: StateWaiting, Attempt: attempt, Delay: delay, Code: code, Reason: reason})
		for {
			if !sleep(ctx, delay) {
				return
			}
			c.setState(StateEvent{State: StateConnecting, Attempt: attempt})
			ws, w, token, err := c.open(ctx)
			if err == nil {
				s = c.startSession(ctx, ws, w, token)
				attempt = 0
				break
			}
			if ctx.Err() != nil {
				return
			}
			delay = c.backoff(attempt, 0)
			attempt++
			c.setState(StateEvent{State: StateWaiting, Attempt: attempt, Delay: delay, Err: err})
		}
	}
}

// sleep waits d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// serve reads the session's frames until the connection ends, then ends
// the session; it returns the close code and reason.
func (c *Client) serve(s *session) (int, string) {
	for {
		typ, data, err := s.ws.Read(s.ctx)
		if err != nil {
			code, reason := int(websocket.StatusAbnormalClosure), err.Error()
			var ce websocket.CloseError
			switch {
			case s.abandoned.Load():
				code, reason = 4000, "keep-alive timeout: nothing heard for three heartbeats"
			case errors.As(err, &ce):
				code, reason = int(ce.Code), ce.Reason
			}
			c.endSession(s)
			return code, reason
		}
		s.lastHeard.Store(time.Now().UnixNano())
		if typ == websocket.MessageText {
			c.handleFrame(s, data)
		}
	}
}

// endSession fails the calls in flight and waits for the session's goroutines.
func (c *Client) endSession(s *session) {
	s.cancel()
	_ = s.ws.CloseNow()
	err := ErrDisconnected
	select {
	case <-c.done:
		err = ErrClosed
	default:
	}
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
	}
	pending := s.pending
	s.pending = nil
	c.mu.Unlock()
	for _, cl := range pending {
		cl.answer <- answer{err: fmt.Errorf("%s: %w", cl.typ, err)}
	}
	s.wg.Wait()
}

// frame is any server frame, decoded into the fields the client reads.
type frame struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id"`
	Users   []User          `json:"users"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	// UserIDs: with error forbidden, the ids the token may not watch.
	UserIDs []string `json:"userIds"`
}

func (c *Client) handleFrame(s *session, data []byte) {
	if string(data) == string(protocol.PongText) {
		return
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		c.emit(&ErrorEvent{Err: fmt.Errorf("client: unparsable frame %.80q: %w", data, err)})
		return
	}
	switch f.Type {
	case "presence":
		c.applyUsers(f.Users, len(f.ID) > 0)
	case "error":
		e := &Error{Code: f.Code, Message: f.Message, Forbidden: f.UserIDs}
		if cl := c.takeCall(s, f.ID); cl != nil {
			cl.answer <- answer{err: e}
		} else {
			c.emit(&ErrorEvent{Err: e})
		}
		return
	}
	// ok, pong, presence answers, and answers of types newer gateways send.
	if cl := c.takeCall(s, f.ID); cl != nil {
		cl.answer <- answer{users: f.Users}
	}
}

// takeCall removes and returns the call an answer's id belongs to, if any.
func (c *Client) takeCall(s *session, rawID json.RawMessage) *call {
	if len(rawID) == 0 {
		return nil
	}
	id, err := strconv.ParseInt(string(rawID), 10, 64)
	if err != nil {
		return nil // not one of ours: the client sends numbers
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := s.pending[id]
	delete(s.pending, id)
	return cl
}

// applyUsers keeps each watched user's newest state and emits the changes.
func (c *Client) applyUsers(users []User, snapshot bool) {
	var events []Event
	c.mu.Lock()
	for _, u := range users {
		if _, watched := c.watched[u.UserID]; !watched {
			continue
		}
		h, ok := c.book[u.UserID]
		if ok && h.epoch == c.epoch && u.Version <= h.user.Version {
			events = append(events, &StaleEvent{User: u, Current: h.user})
			continue
		}
		c.book[u.UserID] = held{user: u, epoch: c.epoch}
		ev := &PresenceEvent{User: u, Snapshot: snapshot}
		if ok {
			prev := h.user
			ev.Previous = &prev
		}
		events = append(events, ev)
	}
	c.mu.Unlock()
	for _, ev := range events {
		c.emit(ev)
	}
}

// keepAlive sends the text ping every heartbeat, and closes a connection
// that has been silent for three: a dead network path may never deliver a
// close.
func (c *Client) keepAlive(s *session) {
	defer s.wg.Done()
	every := time.Duration(s.welcome.HeartbeatMs) * time.Millisecond
	if c.o.PingInterval > 0 {
		every = c.o.PingInterval
	}
	if every <= 0 {
		every = 20 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, s.lastHeard.Load())) > 3*every {
			s.abandoned.Store(true)
			_ = s.ws.CloseNow()
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
		_ = s.ws.Write(ctx, websocket.MessageText, []byte(protocol.TypePing))
		cancel()
	}
}

// restore re-sends the watchlist and the status after a welcome.
func (c *Client) restore(s *session) {
	defer s.wg.Done()
	c.mu.Lock()
	ids := append([]string(nil), c.watch...)
	st := c.status
	c.mu.Unlock()
	if len(ids) > 0 {
		if err := c.subscribeChunks(s.ctx, ids); err != nil && s.ctx.Err() == nil {
			c.emit(&ErrorEvent{Err: err})
		}
	}
	if st != nil {
		if _, err := c.request(s.ctx, clientFrame{Type: protocol.TypeStatus, Status: string(st.status), Text: st.text}); err != nil && s.ctx.Err() == nil {
			c.emit(&ErrorEvent{Err: fmt.Errorf("client: restoring the status: %w", err)})
		}
	}
}

// refresher refreshes the token at RefreshAt of its remaining lifetime. When
// a refresh fails it tries again halfway to exp while more than a second is
// left; otherwise the gateway closes with 4001 and the client reconnects
// with a fresh token.
func (c *Client) refresher(s *session) {
	defer s.wg.Done()
	if c.o.Token == nil {
		return
	}
	for {
		c.mu.Lock()
		token := s.token
		c.mu.Unlock()
		exp, ok := tokenExpiry(token)
		if !ok {
			// No exp: nothing to refresh until Refresh brings a token with one.
			select {
			case <-s.ctx.Done():
				return
			case <-s.tokenChanged:
				continue
			}
		}
		t := time.NewTimer(time.Duration(float64(time.Until(exp)) * c.o.RefreshAt))
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-s.tokenChanged:
			t.Stop()
			continue
		case <-t.C:
		}
		for {
			err := c.refresh(s.ctx, s)
			if err == nil || s.ctx.Err() != nil {
				break
			}
			c.emit(&ErrorEvent{Err: fmt.Errorf("client: refreshing the token: %w", err)})
			left := time.Until(exp)
			if left <= time.Second {
				<-s.ctx.Done() // the gateway closes with 4001
				return
			}
			if !sleep(s.ctx, left/2) {
				return
			}
		}
	}
}

// refresh gets a new token and sends it on s, within ctx and s's life.
func (c *Client) refresh(ctx context.Context, s *session) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	ctx, cancelSession := context.WithCancel(ctx)
	defer cancelSession()
	stop := context.AfterFunc(s.ctx, cancelSession)
	defer stop()
	token, err := c.o.Token(ctx)
	if err != nil {
		return fmt.Errorf("the token function: %w", err)
	}
	if token == "" {
		return errors.New("the token function returned an empty token")
	}
	if _, err := c.requestOn(ctx, s, clientFrame{Type: protocol.TypeRefresh, Token: token}); err != nil {
		return err
	}
	c.mu.Lock()
	s.token = token
	c.mu.Unlock()
	return nil
}

// jwtPayload decodes the claims part of a JWT.
func jwtPayload(token string) ([]byte, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	return b, err == nil
}
