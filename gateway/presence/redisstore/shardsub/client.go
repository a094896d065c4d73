package shardsub

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Options configure a Client.
type Options struct {
	// Router finds a channel's master. Required.
	Router Router
	// TLS, when set, makes every connection TLS with the configuration it
	// returns for the node's address. It is asked at every dial, so a
	// rotated CA is used from the next connection on.
	TLS func(addr string) *tls.Config
	// Credentials, when set, gives the username and password of each new
	// connection (AUTH; no AUTH when both are empty). It is asked at every
	// dial, so a rotated password is used from the next connection on.
	Credentials func(ctx context.Context) (username, password string, err error)
	// Logger (slog.Default when nil).
	Logger *slog.Logger
	// OnMessage receives the messages of subscribed channels. Required.
	// It is called from one goroutine per node connection, never from the
	// reader: messages of one channel arrive in order, and a message that a
	// newer one of its channel overtook before delivery is skipped (see
	// OnCoalesced). It should still return promptly.
	OnMessage func(channel, payload string)
	// OnResync is called with channels that were subscribed again after
	// being lost: messages may have been missed meanwhile. An error keeps
	// them for the next repair round.
	OnResync func(channels []string) error
	// OnCoalesced counts messages skipped because a newer message of the
	// same channel arrived before they were delivered (optional).
	OnCoalesced func(n int)
	// QueueLen is how many messages a node connection queues, all
	// delivered in order, before a backlog starts coalescing (latest state
	// wins per channel); DefaultQueueLen when zero.
	QueueLen int
	// Backoff paces the repair of lost subscriptions (exponential with
	// jitter, so that replicas do not retry in lockstep after an outage);
	// DefaultRepairBackoff when zero.
	Backoff wait.Backoff
}

// DefaultRepairBackoff is the repair loop's default pace: 250 ms doubling
// to 10 s, each wait jittered by up to +50%.
var DefaultRepairBackoff = wait.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 1 << 30, Cap: 10 * time.Second}

// routeBackoff paces the attempts of one routing (MOVED, a dead node).
var routeBackoff = wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 3}

// Client holds sharded subscriptions: one SSUBSCRIBE per channel, on one
// connection per master node. See the package doc.
type Client struct {
	router    Router
	tlsFor    func(addr string) *tls.Config
	creds     func(ctx context.Context) (username, password string, err error)
	log       *slog.Logger
	onMessage func(channel, payload string)
	onResync  func(channels []string) error
	onCoal    func(n int)
	queueLen  int
	backoff   wait.Backoff
	resync    []string // re-subscribed channels whose resync is still to do (Run's goroutine only)

	// op serialises Subscribe, Unsubscribe and repairs (a one-slot
	// semaphore, so that a caller whose context ends stops waiting: while
	// Redis is unreachable, callers must not pile up behind one another).
	op chan struct{}

	mu    sync.Mutex
	want  map[string]string   // channel -> addr it is subscribed on ("" = lost, to repair)
	conns map[string]*subConn // addr -> connection
	kick  chan struct{}       // wakes the repair loop
	shut  bool                // Close ran: nothing is repaired any more
}

const (
	subPingInterval = 5 * time.Second
	subReadTimeout  = 3 * subPingInterval
	subDialTimeout  = 2 * time.Second
	subReplyTimeout = 3 * time.Second
)

var errSubConnClosed = errors.New("subscription connection closed")

// New returns a client with no subscription; call Run to keep them.
func New(o Options) (*Client, error) {
	if o.Router == nil || o.OnMessage == nil {
		return nil, errors.New("shardsub: Options.Router and Options.OnMessage are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.Backoff.Duration == 0 {
		o.Backoff = DefaultRepairBackoff
	}
	return &Client{
		router: o.Router, tlsFor: o.TLS, creds: o.Credentials, log: o.Logger,
		onMessage: o.OnMessage, onResync: o.OnResync, onCoal: o.OnCoalesced, queueLen: o.QueueLen, backoff: o.Backoff,
		want:  map[string]string{},
		conns: map[string]*subConn{},
		kick:  make(chan struct{}, 1),
		op:    make(chan struct{}, 1),
	}, nil
}

func (s *Client) acquire(ctx context.Context) error {
	select {
	case s.op <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Client) release() { <-s.op }

// Subscribe makes sure ch is subscribed on its master; it waits for the
// confirmation, so messages published after it returns are delivered.
func (s *Client) Subscribe(ctx context.Context, ch string) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	s.mu.Lock()
	addr, known := s.want[ch]
	s.mu.Unlock()
	if known && addr != "" {
		return nil
	}
	addr, err := s.route(ctx, ch)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.want[ch] = addr
	s.mu.Unlock()
	return nil
}

// Unsubscribe drops ch. Errors are not returned to the caller's detriment:
// a lost connection drops the subscription anyway.
func (s *Client) Unsubscribe(ctx context.Context, ch string) error {
	// Forget it first: even if the SUNSUBSCRIBE cannot be sent now, it is
	// not repaired again after a reconnect.
	s.mu.Lock()
	addr, known := s.want[ch]
	delete(s.want, ch)
	c := s.conns[addr]
	s.mu.Unlock()
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	if !known || addr == "" || c == nil {
		return nil
	}
	_, err := c.request(ctx, "SUNSUBSCRIBE", ch)
	if err != nil && !errors.Is(err, errSubConnClosed) {
		return err
	}
	return nil
}

// route subscribes ch on its slot's master, following MOVED (after a state
// reload) a few times. It returns the address it is subscribed on.
func (s *Client) route(ctx context.Context, ch string) (string, error) {
	var lastErr error
	b := routeBackoff
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			s.router.Reload(ctx)
			t := time.NewTimer(b.Step())
			select {
			case <-ctx.Done():
				t.Stop()
				return "", ctx.Err()
			case <-t.C:
			}
		}
		addr, err := s.router.MasterAddr(ctx, ch)
		if err != nil {
			lastErr = err
			continue
		}
		c, err := s.conn(ctx, addr)
		if err != nil {
			lastErr = err
			continue
		}
		_, err = c.request(ctx, "SSUBSCRIBE", ch)
		if err == nil {
			return addr, nil
		}
		lastErr = err
		var re respError
		if !errors.As(err, &re) && !errors.Is(err, errSubConnClosed) {
			return "", err // context ended
		}
	}
	return "", fmt.Errorf("ssubscribe %s: %w", ch, lastErr)
}

// conn returns the subscription connection to addr, dialling it if needed.
func (s *Client) conn(ctx context.Context, addr string) (*subConn, error) {
	s.mu.Lock()
	c, shut := s.conns[addr], s.shut
	s.mu.Unlock()
	if shut {
		return nil, errSubConnClosed
	}
	if c != nil {
		return c, nil
	}
	c, err := s.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	go c.readLoop(s)
	go c.in.deliver(s.onMessage, s.onCoal)
	if err := s.auth(ctx, c); err != nil {
		c.close(err)
		return nil, fmt.Errorf("redis %s: AUTH: %w", addr, err)
	}
	s.mu.Lock()
	if old := s.conns[addr]; old != nil { // lost a race with another dial
		s.mu.Unlock()
		c.close(errSubConnClosed)
		return old, nil
	}
	s.conns[addr] = c
	s.mu.Unlock()
	return c, nil
}

// auth authenticates a new connection with the credentials of now.
func (s *Client) auth(ctx context.Context, c *subConn) error {
	if s.creds == nil {
		return nil
	}
	username, password, err := s.creds(ctx)
	if err != nil {
		return err
	}
	if password == "" && username == "" {
		return nil
	}
	args := []string{"AUTH", password}
	if username != "" {
		args = []string{"AUTH", username, password}
	}
	_, err = c.request(ctx, args...)
	return err
}

func (s *Client) dial(ctx context.Context, addr string) (*subConn, error) {
	ctx, cancel := context.WithTimeout(ctx, subDialTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if s.tlsFor != nil {
		d := tls.Dialer{Config: s.tlsFor(addr)}
		nc, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	done := make(chan struct{})
	return &subConn{
		addr: addr, nc: nc,
		br:   bufio.NewReaderSize(nc, 4096),
		bw:   bufio.NewWriterSize(nc, 1024),
		done: done,
		in:   newInbox(done, s.queueLen),
	}, nil
}

// lost is called by a connection's reader when it ends: its channels must be
// subscribed again, wherever their slots now live.
func (s *Client) lost(c *subConn) {
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return
	}
	if s.conns[c.addr] == c {
		delete(s.conns, c.addr)
	}
	n := 0
	for ch, addr := range s.want {
		if addr == c.addr {
			s.want[ch] = ""
			n++
		}
	}
	s.mu.Unlock()
	if n > 0 {
		s.log.Warn("redis subscription connection lost; re-subscribing", "addr", c.addr, "channels", n)
		s.wake()
	}
}

// movedAway marks ch lost after its node unsubscribed it on its own (slot
// migrated or node demoted).
func (s *Client) movedAway(addr, ch string) {
	s.mu.Lock()
	cur, ok := s.want[ch]
	if ok && cur == addr {
		s.want[ch] = ""
	}
	s.mu.Unlock()
	if ok && cur == addr {
		s.wake()
	}
}

func (s *Client) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run repairs lost subscriptions and pings the connections until ctx ends.
// The connections themselves are closed by Close.
func (s *Client) Run(ctx context.Context) {
	ping := time.NewTicker(subPingInterval)
	defer ping.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	b := s.backoff
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			s.pingAll(ctx)
			if s.checkRoutes(ctx) == 0 {
				continue
			}
		case <-s.kick:
		case <-retry.C:
		}
		if s.repair(ctx) {
			b = s.backoff // all repaired: the next trouble starts short again
		} else {
			retry.Reset(b.Step())
		}
	}
}

// repair re-subscribes every lost channel; it reports whether all succeeded.
func (s *Client) repair(ctx context.Context) bool {
	s.mu.Lock()
	var lost []string
	for ch, addr := range s.want {
		if addr == "" {
			lost = append(lost, ch)
		}
	}
	s.mu.Unlock()
	if len(lost) == 0 {
		return s.flushResync()
	}
	s.router.Reload(ctx)
	var done []string
	ok := true
	for _, ch := range lost {
		if ctx.Err() != nil {
			return false
		}
		if s.acquire(ctx) != nil {
			return false
		}
		s.mu.Lock()
		addr, still := s.want[ch]
		s.mu.Unlock()
		if !still || addr != "" { // unwatched or repaired meanwhile
			s.release()
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 2*subReplyTimeout)
		addr, err := s.route(rctx, ch)
		cancel()
		if err == nil {
			s.mu.Lock()
			if _, still := s.want[ch]; still {
				s.want[ch] = addr
			}
			s.mu.Unlock()
			done = append(done, ch)
		} else {
			ok = false
		}
		s.release()
		if !ok {
			break // Redis still unreachable: try again later, not channel by channel
		}
	}
	s.resync = append(s.resync, done...)
	return s.flushResync() && ok
}

// flushResync hands the re-subscribed channels to onResync; on failure
// (Redis still shaky) they are kept for the next round.
func (s *Client) flushResync() bool {
	if len(s.resync) == 0 || s.onResync == nil {
		s.resync = nil
		return true
	}
	if err := s.onResync(s.resync); err != nil {
		if len(s.resync) > 100_000 { // bounded: drop the oldest
			s.resync = s.resync[len(s.resync)-100_000:]
		}
		return false
	}
	s.resync = nil
	return true
}

// checkRoutes marks lost every channel whose slot's master, in the
// client's current slot map, is not the node it is subscribed on. A node
// is expected to push "sunsubscribe" when it loses a slot, but the
// subscriptions must not depend on one push arriving: the slot map is kept
// fresh by the store's own commands (MOVED reloads it), and this check,
// every ping interval, moves whatever the push missed. Lookups are local.
func (s *Client) checkRoutes(ctx context.Context) int {
	s.mu.Lock()
	chans := make(map[string]string, len(s.want))
	for ch, addr := range s.want {
		if addr != "" {
			chans[ch] = addr
		}
	}
	s.mu.Unlock()
	moved := 0
	for ch, addr := range chans {
		cur, err := s.router.MasterAddr(ctx, ch)
		if err != nil || cur == addr {
			continue
		}
		s.mu.Lock()
		stale := s.want[ch] == addr
		if stale {
			s.want[ch] = ""
			moved++
		}
		old := s.conns[addr]
		s.mu.Unlock()
		if stale && old != nil {
			// Best effort: the old node must not deliver it twice later.
			_ = old.send(ctx, nil, "SUNSUBSCRIBE", ch)
		}
	}
	if moved > 0 {
		s.log.Info("re-routing shard subscriptions whose slot changed master", "channels", moved)
	}
	return moved
}

func (s *Client) pingAll(ctx context.Context) {
	s.mu.Lock()
	conns := make([]*subConn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		// The reply is read by the reader; a dead peer shows up as a read
		// timeout there, so there is nothing to wait for here.
		_ = c.send(ctx, nil, "PING")
	}
}

// Close closes every connection; nothing is subscribed or repaired after it.
func (s *Client) Close() {
	s.mu.Lock()
	conns := s.conns
	s.conns = map[string]*subConn{}
	s.shut = true
	s.mu.Unlock()
	for _, c := range conns {
		c.close(errSubConnClosed)
	}
}

// Count returns how many channels are subscribed (or being repaired).
func (s *Client) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.want)
}

// subConn is one RESP2 connection in subscribed mode. Replies come back in
// the order the commands were sent, interleaved with pushes ("smessage" and
// unsolicited "sunsubscribe"), so pending requests are a FIFO.
type subConn struct {
	addr string
	nc   net.Conn
	br   *bufio.Reader

	wmu     sync.Mutex // guards bw, pending, err
	bw      *bufio.Writer
	pending []pendingReq
	err     error
	done    chan struct{}

	in *inbox // messages read, waiting for delivery
}

type pendingReq struct {
	kind    string // lower-case command name
	channel string
	reply   chan error // nil: nobody waits
}

// request sends a command and waits for its reply.
func (c *subConn) request(ctx context.Context, args ...string) (string, error) {
	reply := make(chan error, 1)
	if err := c.send(ctx, reply, args...); err != nil {
		return "", err
	}
	t := time.NewTimer(subReplyTimeout)
	defer t.Stop()
	select {
	case err := <-reply:
		return "", err
	case <-ctx.Done():
		return "", ctx.Err()
	case <-t.C:
		c.close(fmt.Errorf("redis %s: no reply to %s within %s", c.addr, args[0], subReplyTimeout))
		return "", errSubConnClosed
	}
}

func (c *subConn) send(_ context.Context, reply chan error, args ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.err != nil {
		return errSubConnClosed
	}
	req := pendingReq{kind: strings.ToLower(args[0]), reply: reply}
	if len(args) > 1 {
		req.channel = args[len(args)-1]
	}
	c.pending = append(c.pending, req)
	_ = c.nc.SetWriteDeadline(time.Now().Add(subReplyTimeout))
	if err := writeCommand(c.bw, args...); err != nil {
		c.pending = c.pending[:len(c.pending)-1]
		go c.close(err)
		return errSubConnClosed
	}
	return nil
}

// complete hands the reply to the oldest pending request.
func (c *subConn) complete(kind, channel string, err error) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.pending) == 0 {
		return false
	}
	head := c.pending[0]
	if kind != "" && (head.kind != kind || head.channel != channel) {
		return false
	}
	c.pending = c.pending[1:]
	if head.reply != nil {
		head.reply <- err
	}
	return true
}

func (c *subConn) close(reason error) {
	c.wmu.Lock()
	if c.err != nil {
		c.wmu.Unlock()
		return
	}
	c.err = reason
	pending := c.pending
	c.pending = nil
	close(c.done)
	c.wmu.Unlock()
	_ = c.nc.Close()
	for _, p := range pending {
		if p.reply != nil {
			p.reply <- errSubConnClosed
		}
	}
}

func (c *subConn) readLoop(s *Client) {
	defer s.lost(c)
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(subReadTimeout))
		v, err := readValue(c.br)
		if err != nil {
			c.close(err)
			return
		}
		switch v := v.(type) {
		case respError:
			c.complete("", "", v)
		case string: // +OK (AUTH)
			c.complete("", "", nil)
		case []any:
			c.handleArray(s, v)
		}
	}
}

func (c *subConn) handleArray(s *Client, v []any) {
	if len(v) == 0 {
		return
	}
	kind, _ := v[0].(string)
	switch strings.ToLower(kind) {
	case "smessage":
		if len(v) == 3 {
			ch, _ := v[1].(string)
			payload, _ := v[2].(string)
			c.in.put(ch, payload)
		}
	case "ssubscribe":
		ch, _ := v[1].(string)
		c.complete("ssubscribe", ch, nil)
	case "sunsubscribe":
		ch, _ := v[1].(string)
		if !c.complete("sunsubscribe", ch, nil) {
			s.movedAway(c.addr, ch)
		}
	case "pong":
		c.complete("ping", "", nil)
	}
}
