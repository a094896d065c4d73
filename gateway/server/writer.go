package server

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/coder/websocket"
)

// Bounds of the send side. Variables, not constants, only so that tests
// can shorten them (export_test.go).
var (
	// writeTimeout bounds one frame's write to the socket: a client that
	// reads nothing for that long is a slow consumer and is cut.
	writeTimeout = 10 * time.Second
	// flushTimeout bounds how long a closing connection's queued frames
	// are written before its close frame, so that the answers a client
	// earned (pongs, rate_limited...) arrive before a 1008.
	flushTimeout = time.Second
	// closeTimeout bounds a whole close, from its start to the TCP
	// connection's end: flushing, the close frame and the wait for the
	// client's reply. A client that never answers the close frame (a
	// frozen one, a straggler at drain) is cut then.
	closeTimeout = 2 * time.Second
)

// shutdown is a close the server started: the frame the writer sends once
// the queue is flushed, and the timer that cuts the TCP connection if the
// close has not ended by then. Allocated only when closing.
type shutdown struct {
	code    websocket.StatusCode
	text    string
	flushBy time.Time
	drop    bool // no flush: the frames being written are dropped too
	sent    bool // the writer has sent (or given up sending) the close frame
	cut     *time.Timer
}

// Deliver queues a presence event about userID (hub.Subscriber). A newer
// event about a user replaces the pending one, so the queue of a watcher
// is bounded by the users it watches.
func (c *client) Deliver(userID string, frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	if c.q.pushEvent(userID, frame) {
		c.s.metrics.EventsCoalescedTotal.Inc()
	}
	c.wakeWriter()
}

// send queues an answer; past maxQueuedBytes the client is a slow
// consumer.
func (c *client) send(kind string, data []byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if !c.q.push(kind, data) {
		c.mu.Unlock()
		c.s.metrics.SlowConsumerDisconnects.Inc()
		c.closeWith(statusPolicyViolation, "slow consumer", "slow_consumer", false)
		return
	}
	c.wakeWriter()
	c.mu.Unlock()
}

// dropEvents forgets pending events about users the client stopped
// watching.
func (c *client) dropEvents(userIDs []string) {
	c.mu.Lock()
	c.q.dropEvents(userIDs)
	c.mu.Unlock()
}

// wakeWriter starts the writer goroutine unless it runs. Called with c.mu.
func (c *client) wakeWriter() {
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
}

// writeLoop writes everything queued, several frames per wake-up (and
// the pending presence events batched into as few frames as possible),
// until the queue is empty; then it sends the close frame of a close the
// server started, and exits. An idle connection has no writer.
func (c *client) writeLoop() {
	for {
		c.mu.Lock()
		if c.closing && c.shut == nil {
			// Closed by the client or the network: nothing more goes out.
			c.q.release()
		}
		if c.shut != nil && time.Now().After(c.shut.flushBy) {
			c.q.release() // flushed for long enough: on to the close frame
		}
		if c.q.empty() {
			if c.shut != nil && !c.shut.sent {
				c.shut.sent = true
				code, text := c.shut.code, c.shut.text
				c.mu.Unlock()
				// Bounded by the shutdown's cut of the TCP connection.
				_ = c.ws.Close(code, text)
				c.mu.Lock()
			}
			c.writerExit()
			c.mu.Unlock()
			return
		}
		frames, events := c.q.take()
		var flushBy time.Time
		if c.shut != nil {
			flushBy = c.shut.flushBy
		}
		c.mu.Unlock()

		if err := c.writeBatch(frames, events, flushBy); err != nil {
			c.mu.Lock()
			switch {
			case c.shut == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)):
				// It read nothing for writeTimeout. (The library closed
				// the connection: the read loop may have seen that
				// first and called it lost.)
				c.closing, c.reason = true, "slow_consumer"
				c.s.metrics.SlowConsumerDisconnects.Inc()
			case !c.closing:
				c.closing, c.reason = true, "write_error"
			}
			if c.shut != nil {
				c.shut.sent = true // the connection is gone: no close frame
			}
			c.q.release()
			c.writerExit()
			c.mu.Unlock()
			_ = c.ws.CloseNow()
			return
		}
	}
}

// writeBatch writes answers, then the pending events. Each frame's write
// is bounded by writeTimeout (a client reading slowly but steadily is not
// cut, one that reads nothing is), and by flushBy when closing.
func (c *client) writeBatch(frames []outFrame, events []pendingEvent, flushBy time.Time) error {
	write := func(data []byte) error {
		deadline := time.Now().Add(writeTimeout)
		if !flushBy.IsZero() && flushBy.Before(deadline) {
			deadline = flushBy
		}
		if c.raw == nil {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			return c.ws.Write(ctx, websocket.MessageText, data)
		}
		// The socket's own deadline rather than a context's: no timer and
		// no context per frame (the library arms neither for a context
		// that cannot end).
		if err := c.raw.SetWriteDeadline(deadline); err != nil {
			return err
		}
		err := c.ws.Write(context.Background(), websocket.MessageText, data)
		_ = c.raw.SetWriteDeadline(time.Time{})
		return err
	}
	// Past flushBy, or on a close without flush, the rest is dropped and
	// the close frame goes next.
	stop := func() bool { return c.dropping() || !flushBy.IsZero() && time.Now().After(flushBy) }
	for _, f := range frames {
		if stop() {
			return nil
		}
		if err := write(f.data); err != nil {
			return err
		}
		c.s.metrics.MessagesSentTotal.WithLabelValues(f.kind).Inc()
	}
	for _, f := range batchEvents(events) {
		if stop() {
			return nil
		}
		if err := write(f); err != nil {
			return err
		}
		c.s.metrics.MessagesSentTotal.WithLabelValues(kindPresence).Inc()
	}
	return nil
}

// dropping reports whether a close without flush (a slow consumer) has
// started: the rest of the batch being written is dropped, and the close
// frame goes next.
func (c *client) dropping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shut != nil && c.shut.drop
}

// writerExit marks the writer gone and wakes run waiting for it. Called
// with c.mu.
func (c *client) writerExit() {
	c.writing = false
	c.q.release()
	if c.writerDone != nil {
		close(c.writerDone)
		c.writerDone = nil
	}
}

// waitWriter returns once no writer runs.
func (c *client) waitWriter() {
	c.mu.Lock()
	if !c.writing {
		c.mu.Unlock()
		return
	}
	if c.writerDone == nil {
		c.writerDone = make(chan struct{})
	}
	done := c.writerDone
	c.mu.Unlock()
	<-done
}

// closeWith starts a close from the server: no more frames are queued;
// with flush, what is queued is written first (for at most flushTimeout);
// then the close frame goes out, and the TCP connection is cut if the
// whole close has not ended within closeTimeout. The read loop sees the
// connection end and cleans up.
func (c *client) closeWith(code websocket.StatusCode, text, reason string, flush bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.closing, c.reason = true, reason
	if !flush {
		c.q.release()
	}
	c.shut = &shutdown{code: code, text: text, flushBy: time.Now().Add(flushTimeout), drop: !flush,
		cut: time.AfterFunc(closeTimeout, c.cutConn)}
	c.wakeWriter()
}

// closeAsync closes from outside the read loop (idle sweep, drain): the
// queued frames are flushed first, within flushTimeout.
func (c *client) closeAsync(code websocket.StatusCode, text, reason string) {
	c.closeWith(code, text, reason, true)
}

// closeSync closes from the read loop, which returns afterwards; the
// writer flushes the queued answers and sends the close frame.
func (c *client) closeSync(code websocket.StatusCode, text, reason string) {
	c.closeWith(code, text, reason, true)
}

// cutConn ends the TCP connection under the WebSocket without a
// handshake: every read and write on it fails at once.
func (c *client) cutConn() {
	if c.raw != nil {
		_ = c.raw.Close()
	}
}

// markClosing records that the connection ended (the client closed it,
// or the network did) unless a close was already under way; nothing more
// is queued.
func (c *client) markClosing(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		c.closing, c.reason = true, reason
	}
}

// finish waits for the writer (a close the server started is bounded by
// closeTimeout; otherwise the connection is closed at once) and releases
// the connection.
func (c *client) finish() {
	c.mu.Lock()
	shut := c.shut
	c.mu.Unlock()
	if shut == nil {
		_ = c.ws.CloseNow()
		c.cutConn()
		c.waitWriter()
		return
	}
	c.waitWriter()
	_ = c.ws.CloseNow()
	shut.cut.Stop()
	c.cutConn()
}
