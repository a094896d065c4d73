package server

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/presencekit/presence-operator/gateway/auth"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/protocol"
)

// Close codes the gateway uses.
const (
	statusGoingAway       = websocket.StatusGoingAway       // 1001: idle timeout, drain
	statusUnsupportedData = websocket.StatusUnsupportedData // 1003: binary frame
	statusPolicyViolation = websocket.StatusPolicyViolation // 1008: flood, errors, slow consumer
	statusTryAgainLater   = websocket.StatusTryAgainLater   // 1013: the store failed to record the connection
)

const (
	// maxSubscriptions bounds the users one connection watches.
	maxSubscriptions = 1000
	// storeTimeout bounds one store call made for a client's request.
	storeTimeout = 5 * time.Second
	// errorBurst and errorRefill are the error budget: each error answer
	// (bad frame, rate limited, too many ids...) spends one credit, one
	// credit comes back per errorRefill, and a client out of credit is
	// closed with 1008.
	errorBurst  = 10
	errorRefill = time.Second
)

// Frame kinds, the label of messages_sent_total.
const (
	kindWelcome  = "welcome"
	kindPong     = "pong"
	kindPresence = "presence"
	kindOK       = "ok"
	kindError    = "error"
)

// client is one WebSocket connection. Its goroutines: the one running the
// read loop (run), and a writer started only while frames are queued
// (writer.go), so an idle connection costs one goroutine.
type client struct {
	s   *Server
	ws  *websocket.Conn
	raw net.Conn // the TCP connection under ws, cut when a close does not end in time
	pc  presence.Conn

	lastRead   atomic.Int64 // unix nanoseconds of the last frame received (idle sweep)
	tokenUntil atomic.Int64 // unix nanoseconds at which the token expires; 0 = never (token.go)
	// watch is the token's "watch" claim: whom the connection may
	// subscribe to and query (nil: anybody). Read and replaced (by a
	// refresh) only by the read loop.
	watch *auth.WatchList

	mu         sync.Mutex
	q          sendQueue
	writing    bool          // a writer goroutine is draining q
	writerDone chan struct{} // closed when the writer exits; made only when run waits for it
	closing    bool          // no more frames: the connection is being closed
	shut       *shutdown     // the close the server started, if it did
	reason     string        // why, for disconnections_total

	// Rate limits, on the server's clock: messages (MESSAGE_RATE and
	// MESSAGE_BURST) and the error budget.
	msgs, errs *rate.Limiter
	// The frames a client sent while the read loop was not reading (busy
	// with a request, mostly waiting on the store): see owed. Guarded by mu.
	owed      float64 // messages owed to the client
	owedUntil int64   // unix ns after which they are forgotten

	// Owned by the read loop.
	subs map[string]struct{}
}

func newClient(s *Server, ws *websocket.Conn, raw net.Conn, pc presence.Conn) *client {
	c := &client{s: s, ws: ws, raw: raw, pc: pc,
		msgs: rate.NewLimiter(rate.Limit(s.cfg.MessageRate), s.cfg.MessageBurst),
		errs: rate.NewLimiter(rate.Every(errorRefill), errorBurst)}
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

// run is the connection loop: read a frame, answer it, until the
// connection ends; then remove the connection's presence and
// subscriptions. It returns the reason the connection ended.
func (c *client) run() string {
	c.readLoop()
	c.markClosing("client_closed")

	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if len(c.subs) > 0 {
		ids := make([]string, 0, len(c.subs))
		for id := range c.subs {
			ids = append(ids, id)
		}
		c.s.hub.Unsubscribe(ctx, c, ids)
	}
	c.s.disconnectStore(c.pc)
	c.finish()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

func (c *client) readLoop() {
	for {
		// No deadline on the read: the idle sweep closes silent clients,
		// so no timer is armed per connection.
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			switch {
			case errors.Is(err, websocket.ErrMessageTooBig):
				// The library has already sent 1009.
				c.markClosing("message_too_big")
			case websocket.CloseStatus(err) != -1:
				c.markClosing("client_closed")
			default:
				c.markClosing("connection_lost")
			}
			return
		}
		now := time.Now()
		c.lastRead.Store(now.UnixNano())
		if typ != websocket.MessageText {
			c.s.metrics.MessagesReceivedTotal.WithLabelValues("binary").Inc()
			c.closeSync(statusUnsupportedData, "binary frames are not supported", "binary")
			return
		}
		if !utf8.Valid(data) { // RFC 6455 section 8.1: fail the connection with 1007
			c.s.metrics.MessagesReceivedTotal.WithLabelValues("invalid").Inc()
			c.closeSync(websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8", "invalid_utf8")
			return
		}
		if !c.allow(c.s.now()) {
			c.s.metrics.MessagesReceivedTotal.WithLabelValues("rate_limited").Inc()
			if !c.fail(&protocol.Error{Code: protocol.CodeRateLimited, Message: "too many messages; slow down"}) {
				c.closeSync(statusPolicyViolation, "rate limit exceeded", "rate_limited")
				return
			}
			continue
		}
		req, perr := protocol.Decode(data)
		c.s.metrics.MessagesReceivedTotal.WithLabelValues(protocol.MetricType(req, perr)).Inc()
		if perr == nil {
			began := c.s.now()
			perr = c.handle(req)
			c.owe(began, c.s.now())
		}
		if perr != nil && !c.fail(perr) {
			c.closeSync(statusPolicyViolation, "too many bad messages", "errors")
			return
		}
	}
}

// maxOwed bounds, in seconds of MESSAGE_RATE, the messages owed to a
// client for the time its read loop was busy: two store calls' worth
// (a subscribe makes two).
const maxOwed = 2 * storeTimeout

// allow charges one message (a text frame or a WebSocket ping) to the
// message rate, or to what is owed to the client.
func (c *client) allow(now time.Time) bool {
	if c.msgs.AllowN(now, 1) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owed >= 1 && now.UnixNano() <= c.owedUntil {
		c.owed--
		return true
	}
	return false
}

// owe records that the read loop handled a request from began to end
// without reading. The rate limit judges a frame when the loop reads it,
// not when it arrived: the frames a client sent at its allowed rate
// while the loop waited (on the store, typically, during a Redis
// failover) would be read afterwards as one burst, past MESSAGE_BURST,
// and the client cut for the server's own stall. So the loop owes the
// client what the rate would have granted meanwhile (MESSAGE_RATE per
// second of the wait, at most maxOwed's worth), spent only once the
// bucket is empty and only for as long again as the wait: enough to
// read the backlog, too short to bank a burst for later.
func (c *client) owe(began, end time.Time) {
	d := end.Sub(began)
	if d <= 0 || d.Seconds()*c.s.cfg.MessageRate < 1 {
		return // less than one message's worth: the common case, no lock
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if end.UnixNano() > c.owedUntil {
		c.owed = 0 // what was owed before has expired
	}
	c.owed = min(c.owed+d.Seconds()*c.s.cfg.MessageRate, maxOwed.Seconds()*c.s.cfg.MessageRate)
	c.owedUntil = max(c.owedUntil, end.Add(d).UnixNano())
}

// onControlPing decides whether a WebSocket ping frame gets its pong. The
// library calls it from inside Read (the read loop's goroutine, or a
// close handshake's). Pings spend the message budget like text frames: a
// ping over it gets no pong and does not count as activity, and spends an
// error credit (a rate_limited answer); a client out of credit is closed
// with 1008, as for a flood of text frames.
func (c *client) onControlPing() bool {
	if c.allow(c.s.now()) {
		c.s.metrics.MessagesReceivedTotal.WithLabelValues("ping_frame").Inc()
		c.lastRead.Store(time.Now().UnixNano())
		return true
	}
	c.s.metrics.MessagesReceivedTotal.WithLabelValues("rate_limited").Inc()
	if !c.fail(&protocol.Error{Code: protocol.CodeRateLimited, Message: "too many messages; slow down"}) {
		c.closeAsync(statusPolicyViolation, "rate limit exceeded", "rate_limited")
	}
	return false
}

// fail answers an error and spends a credit; false when none was left.
// The server's own failures (unavailable, internal) are answered without
// spending: the budget is there to cut clients that send bad frames, not
// clients whose requests met a store failover.
func (c *client) fail(e *protocol.Error) bool {
	if e.Code != protocol.CodeUnavailable && e.Code != protocol.CodeInternal && !c.errs.AllowN(c.s.now(), 1) {
		return false
	}
	c.send(kindError, protocol.EncodeError(e))
	return true
}

// handle answers one valid request; a returned error is answered by the
// caller.
func (c *client) handle(req protocol.Request) *protocol.Error {
	switch req.Type {
	case protocol.TypePing:
		if req.TextPing {
			c.send(kindPong, protocol.PongText)
		} else {
			c.send(kindPong, protocol.EncodePong(req.ID))
		}
		return nil
	case protocol.TypeQuery:
		if err := c.checkWatch(req); err != nil {
			return err
		}
		return c.answerPresence(req)
	case protocol.TypeRefresh:
		return c.refresh(req)
	case protocol.TypeSubscribe:
		if err := c.checkWatch(req); err != nil {
			return err // nothing of the request is subscribed
		}
		var fresh []string
		for _, id := range req.UserIDs {
			if _, ok := c.subs[id]; !ok {
				fresh = append(fresh, id)
			}
		}
		if len(c.subs)+len(fresh) > maxSubscriptions {
			return &protocol.Error{ID: req.ID, Code: protocol.CodeTooManySubscriptions,
				Message: "a connection watches at most 1000 users; unsubscribe some first"}
		}
		if len(fresh) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			err := c.s.hub.Subscribe(ctx, c, fresh)
			cancel()
			if err != nil {
				return c.storeError(req, err)
			}
			if c.subs == nil {
				c.subs = make(map[string]struct{}, len(fresh))
			}
			for _, id := range fresh {
				c.subs[id] = struct{}{}
			}
		}
		// The snapshot is read after the watch is in place, so no change
		// falls between the two; a client keeps the highest version.
		return c.answerPresence(req)
	case protocol.TypeUnsubscribe:
		var gone []string
		for _, id := range req.UserIDs {
			if _, ok := c.subs[id]; ok {
				delete(c.subs, id)
				gone = append(gone, id)
			}
		}
		if len(gone) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			c.s.hub.Unsubscribe(ctx, c, gone)
			cancel()
			c.dropEvents(gone)
		}
		if len(c.subs) == 0 {
			c.subs = nil
		}
		c.send(kindOK, protocol.EncodeOK(req.ID))
		return nil
	case protocol.TypeStatus:
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		_, err := c.s.store.SetStatus(ctx, c.pc, req.Status, req.Text)
		cancel()
		if err != nil {
			return c.storeError(req, err)
		}
		c.send(kindOK, protocol.EncodeOK(req.ID))
		return nil
	}
	return &protocol.Error{ID: req.ID, Code: protocol.CodeUnknownType, Message: "unknown message type"}
}

// answerPresence sends the presence of the request's users, with its id.
func (c *client) answerPresence(req protocol.Request) *protocol.Error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	users, err := c.s.store.Get(ctx, req.UserIDs)
	cancel()
	if err != nil {
		return c.storeError(req, err)
	}
	c.send(kindPresence, protocol.EncodePresence(req.ID, users))
	return nil
}

// storeError turns a store failure into the error frame "unavailable".
func (c *client) storeError(req protocol.Request, err error) *protocol.Error {
	c.s.log.Warn("presence store call failed", "type", req.Type, "user", c.pc.UserID, "err", err)
	return &protocol.Error{ID: req.ID, Code: protocol.CodeUnavailable, Message: "presence store unavailable; retry later"}
}

// disconnectStore removes a connection's presence (best effort, logged).
func (s *Server) disconnectStore(pc presence.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, err := s.store.Disconnect(ctx, pc); err != nil {
		s.log.Warn("removing a connection's presence failed", "user", pc.UserID, "err", err)
	}
}
