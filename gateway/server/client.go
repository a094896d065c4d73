package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/protocol"
)

// Close codes the gateway uses.
const (
	statusGoingAway       = websocket.StatusGoingAway       // 1001: idle timeout, drain
	statusUnsupportedData = websocket.StatusUnsupportedData // 1003: binary frame
	statusPolicyViolation = websocket.StatusPolicyViolation // 1008: flood, errors, slow consumer
)

const (
	// sendQueueLen bounds the frames waiting for a client; one more and
	// the client is a slow consumer (closed with 1008).
	sendQueueLen = 256
	// maxSubscriptions bounds the users one connection watches.
	maxSubscriptions = 1000
	// writeTimeout bounds one frame's write to the socket.
	writeTimeout = 10 * time.Second
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

type outFrame struct {
	kind string
	data []byte
}

// client is one WebSocket connection. Its goroutines: the upgrade
// handler's, which runs the read loop (run), and a writer started only
// while frames are queued, so an idle connection costs one goroutine.
type client struct {
	s  *Server
	ws *websocket.Conn
	pc presence.Conn

	lastRead   atomic.Int64 // unix nanoseconds of the last frame received (idle sweep)
	tokenUntil atomic.Int64 // unix nanoseconds at which the token expires; 0 = never (token.go)

	mu      sync.Mutex
	queue   []outFrame
	writing bool   // a writer goroutine is draining queue
	closing bool   // no more frames: the connection is being closed
	reason  string // why, for disconnections_total

	// Owned by the read loop.
	subs       map[string]struct{}
	tokens     float64
	credits    float64
	refilledAt time.Time
}

func newClient(s *Server, ws *websocket.Conn, pc presence.Conn) *client {
	c := &client{s: s, ws: ws, pc: pc, tokens: float64(s.cfg.MessageBurst), credits: errorBurst, refilledAt: time.Now()}
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

// Deliver queues a presence event (hub.Subscriber).
func (c *client) Deliver(frame []byte) { c.send(kindPresence, frame) }

// send queues a frame; a full queue makes the client a slow consumer.
func (c *client) send(kind string, data []byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= sendQueueLen {
		c.mu.Unlock()
		c.s.metrics.SlowConsumerDisconnects.Inc()
		c.closeAsync(statusPolicyViolation, "slow consumer", "slow_consumer")
		return
	}
	c.queue = append(c.queue, outFrame{kind, data})
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
	c.mu.Unlock()
}

// writeLoop writes queued frames until the queue is empty, then exits.
func (c *client) writeLoop() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.closing {
			c.writing = false
			c.queue = nil // give the backing array back while idle
			c.mu.Unlock()
			return
		}
		f := c.queue[0]
		c.queue[0] = outFrame{}
		c.queue = c.queue[1:]
		c.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := c.ws.Write(ctx, websocket.MessageText, f.data)
		cancel()
		if err != nil {
			c.mu.Lock()
			c.writing = false
			c.queue = nil
			if !c.closing {
				c.closing, c.reason = true, "write_error"
			}
			c.mu.Unlock()
			_ = c.ws.CloseNow()
			return
		}
		c.s.metrics.MessagesSentTotal.WithLabelValues(f.kind).Inc()
	}
}

// markClosing stops the queue; it returns false if a close was already
// under way.
func (c *client) markClosing(reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.closing, c.reason = true, reason
	c.queue = nil
	return true
}

// closeAsync starts the close handshake from outside the read loop (idle
// sweep, drain, slow consumer). The read loop then sees the connection
// end and cleans up.
func (c *client) closeAsync(code websocket.StatusCode, text, reason string) {
	if c.markClosing(reason) {
		go func() { _ = c.ws.Close(code, text) }()
	}
}

// closeSync closes from the read loop itself.
func (c *client) closeSync(code websocket.StatusCode, text, reason string) {
	if c.markClosing(reason) {
		_ = c.ws.Close(code, text)
	}
}

// run is the connection loop: read a frame, answer it, until the
// connection ends; then remove the connection's presence and
// subscriptions. It returns the reason the connection ended.
func (c *client) run() string {
	c.readLoop()
	c.markClosing("client_closed")
	c.mu.Lock()
	reason := c.reason
	c.mu.Unlock()

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
	_ = c.ws.CloseNow()
	return reason
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
		c.refill(now)
		if c.tokens < 1 {
			c.s.metrics.MessagesReceivedTotal.WithLabelValues("rate_limited").Inc()
			if !c.fail(&protocol.Error{Code: protocol.CodeRateLimited, Message: "too many messages; slow down"}) {
				c.closeSync(statusPolicyViolation, "rate limit exceeded", "rate_limited")
				return
			}
			continue
		}
		c.tokens--
		req, perr := protocol.Decode(data)
		c.s.metrics.MessagesReceivedTotal.WithLabelValues(protocol.MetricType(req, perr)).Inc()
		if perr == nil {
			perr = c.handle(req)
		}
		if perr != nil && !c.fail(perr) {
			c.closeSync(statusPolicyViolation, "too many bad messages", "errors")
			return
		}
	}
}

// refill tops up the message token bucket and the error budget.
func (c *client) refill(now time.Time) {
	dt := now.Sub(c.refilledAt)
	if dt <= 0 {
		return
	}
	c.refilledAt = now
	c.tokens = min(c.tokens+dt.Seconds()*c.s.cfg.MessageRate, float64(c.s.cfg.MessageBurst))
	c.credits = min(c.credits+float64(dt)/float64(errorRefill), errorBurst)
}

// fail answers an error and spends a credit; false when none was left.
func (c *client) fail(e *protocol.Error) bool {
	if c.credits < 1 {
		return false
	}
	c.credits--
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
		return c.answerPresence(req)
	case protocol.TypeRefresh:
		return c.refresh(req)
	case protocol.TypeSubscribe:
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
