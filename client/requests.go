package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/gateway/protocol"
)

// clientFrame is a request as sent (docs/protocol.md, "Client frames").
type clientFrame struct {
	Type    string   `json:"type"`
	ID      int64    `json:"id"`
	UserIDs []string `json:"userIds,omitempty"`
	Status  string   `json:"status,omitempty"`
	Text    string   `json:"text,omitempty"`
	Token   string   `json:"token,omitempty"`
}

// Subscribe adds users to the watchlist and, when connected, subscribes to
// them (in requests of 100 ids); it returns once the gateway answered, and
// at once when not connected (the watchlist is sent on connect). Their
// states arrive as *PresenceEvent (Get returns them). Ids the gateway
// refuses for good (forbidden, too_many_subscriptions) leave the watchlist,
// and the *Error lists them. If the connection closes first the error wraps
// ErrDisconnected, and the ids stay: they are sent after the reconnect.
func (c *Client) Subscribe(ctx context.Context, userIDs ...string) error {
	ids, err := validIDs("subscribe", userIDs)
	if err != nil {
		return err
	}
	c.mu.Lock()
	var added []string
	for _, id := range ids {
		if c.addWatch(id) {
			added = append(added, id)
		}
	}
	open := c.sess != nil
	c.mu.Unlock()
	if !open || len(added) == 0 {
		return nil
	}
	return c.subscribeChunks(ctx, added)
}

// subscribeChunks subscribes in requests of 100 ids, all sent before the
// first answer is awaited, and returns the first error.
func (c *Client) subscribeChunks(ctx context.Context, ids []string) error {
	var first error
	for _, res := range c.requestAll(ctx, protocol.TypeSubscribe, ids) {
		if res.err == nil {
			continue
		}
		var e *Error
		if errors.As(res.err, &e) {
			e.UserIDs = res.ids
			if permanentSubscribeError(e.Code) {
				c.mu.Lock()
				c.removeWatch(res.ids)
				c.mu.Unlock()
			}
		}
		if first == nil {
			first = res.err
		}
	}
	return first
}

// Unsubscribe removes users from the watchlist and, when connected,
// unsubscribes from them.
func (c *Client) Unsubscribe(ctx context.Context, userIDs ...string) error {
	ids, err := validIDs("unsubscribe", userIDs)
	if err != nil {
		return err
	}
	c.mu.Lock()
	var removed []string
	for _, id := range ids {
		if _, ok := c.watched[id]; ok {
			removed = append(removed, id)
		}
	}
	c.removeWatch(removed)
	open := c.sess != nil
	c.mu.Unlock()
	if !open || len(removed) == 0 {
		return nil
	}
	for _, res := range c.requestAll(ctx, protocol.TypeUnsubscribe, removed) {
		if res.err != nil {
			return res.err
		}
	}
	return nil
}

// Query returns the presence of users, once, in the order asked (in
// requests of 100 ids), watched or not. A ctx without a deadline gets
// Options.RequestTimeout; past it the error wraps context.DeadlineExceeded.
func (c *Client) Query(ctx context.Context, userIDs ...string) ([]User, error) {
	ids, err := validIDs("query", userIDs)
	if err != nil {
		return nil, err
	}
	users := make([]User, 0, len(ids))
	for _, res := range c.requestAll(ctx, protocol.TypeQuery, ids) {
		if res.err != nil {
			return nil, res.err
		}
		users = append(users, res.users...)
	}
	return users, nil
}

// SetStatus sets this user's status and text (user-wide: every connection
// of the user shows it). The client keeps it and sends it again after every
// reconnect. It returns once the gateway accepted it (at once when not
// connected); if the gateway refuses it as a bad request, the previous one
// is kept.
func (c *Client) SetStatus(ctx context.Context, status Status, text string) error {
	if status == "" {
		return errors.New("client: SetStatus: the status is empty")
	}
	wanted := &statusWanted{status: status, text: text}
	c.mu.Lock()
	previous := c.status
	c.status = wanted
	open := c.sess != nil
	c.mu.Unlock()
	if !open {
		return nil
	}
	_, err := c.request(ctx, clientFrame{Type: protocol.TypeStatus, Status: string(status), Text: text})
	// A status the gateway refuses (bad_request: not one it knows, a text
	// too long) would be refused again after a reconnect; after any other
	// failure (rate_limited, a close) it is still what was asked.
	var refused *Error
	if errors.As(err, &refused) && refused.Code == protocol.CodeBadRequest {
		c.mu.Lock()
		if c.status == wanted {
			c.status = previous
		}
		c.mu.Unlock()
	}
	return err
}

// Refresh gets a new token from Options.Token and sends it to the gateway
// (the refresh frame), which then keeps the connection until the new
// token's exp. The client does this by itself before a token expires; call
// it when the token changed for another reason.
func (c *Client) Refresh(ctx context.Context) error {
	if c.o.Token == nil {
		return errors.New("client: Refresh: Options.Token is not set")
	}
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return fmt.Errorf("refresh: %w", ErrNotConnected)
	}
	if err := c.refresh(ctx, s); err != nil {
		return fmt.Errorf("client: refresh: %w", err)
	}
	select {
	case s.tokenChanged <- struct{}{}:
	default:
	}
	return nil
}

// Ping sends a JSON ping and returns the round trip.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if _, err := c.request(ctx, clientFrame{Type: protocol.TypePing}); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// result is the outcome of one request of requestAll.
type result struct {
	ids   []string
	users []User
	err   error
}

// requestAll sends one request per 100 ids, all before awaiting the first
// answer, and returns the outcomes in order.
func (c *Client) requestAll(ctx context.Context, typ string, ids []string) []result {
	parts := chunks(ids)
	out := make([]result, len(parts))
	sent := make([]func(context.Context) ([]User, error), len(parts))
	for i, part := range parts {
		out[i].ids = part
		sent[i], out[i].err = c.send(frameFor(typ, part))
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	for i := range parts {
		if out[i].err == nil {
			out[i].users, out[i].err = sent[i](ctx)
		}
	}
	return out
}

func frameFor(typ string, ids []string) clientFrame {
	return clientFrame{Type: typ, UserIDs: ids}
}

// request sends one frame on the open connection and waits for its answer.
func (c *Client) request(ctx context.Context, f clientFrame) ([]User, error) {
	wait, err := c.send(f)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return wait(ctx)
}

// requestOn is request on session s only (a refresh belongs to its connection).
func (c *Client) requestOn(ctx context.Context, s *session, f clientFrame) ([]User, error) {
	wait, err := c.sendOn(s, f)
	if err != nil {
		return nil, err
	}
	return wait(ctx)
}

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.o.RequestTimeout)
}

// send writes f with a fresh id on the open connection and returns the
// function that waits for the answer.
func (c *Client) send(f clientFrame) (func(context.Context) ([]User, error), error) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("%s: %w", f.Type, ErrNotConnected)
	}
	return c.sendOn(s, f)
}

func (c *Client) sendOn(s *session, f clientFrame) (func(context.Context) ([]User, error), error) {
	c.mu.Lock()
	if s.pending == nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", f.Type, ErrNotConnected)
	}
	f.ID = c.nextID
	c.nextID++
	cl := &call{typ: f.Type, answer: make(chan answer, 1)}
	s.pending[f.ID] = cl
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(s.pending, f.ID)
		c.mu.Unlock()
	}
	b, err := json.Marshal(f)
	if err != nil {
		forget()
		return nil, fmt.Errorf("client: encoding %s: %w", f.Type, err)
	}
	wctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
	defer cancel()
	if err := s.ws.Write(wctx, websocket.MessageText, b); err != nil {
		forget()
		return nil, fmt.Errorf("%s: %w (%w)", f.Type, ErrDisconnected, err)
	}
	return func(ctx context.Context) ([]User, error) {
		select {
		case a := <-cl.answer:
			return a.users, a.err
		case <-ctx.Done():
			forget()
			return nil, fmt.Errorf("%s: no answer: %w", f.Type, ctx.Err())
		}
	}, nil
}
