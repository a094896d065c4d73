package main

// The clients of the storm scenarios (storm.go): worker processes that hold
// many reconnecting clients, the watchers and the status probers, which live
// in the coordinator.
//
// They stay on raw WebSocket connections, not the Go client (package
// client): the storms measure the reconnect itself. Each attempt, drop and
// close code is timed and reported, a client moves to another gateway after
// a failure (the client has one URL), and the probers pipeline status
// writes with their own timeouts to time the window in which writes fail.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// backoffDelay is the demo client's (gateway/demo/web/client.js): before
// retry number attempt (0 for the first), a ceiling doubling from base up
// to cap, and a delay drawn from [ceiling/2, ceiling] ("equal jitter").
func backoffDelay(attempt int, base, capDelay time.Duration) time.Duration {
	n := max(0, min(attempt, 30))
	ceiling := min(capDelay, base<<n)
	if base<<n <= 0 { // shifted past int64
		ceiling = capDelay
	}
	return ceiling/2 + time.Duration(rand.Int64N(int64(ceiling/2)+1))
}

// otherGateway picks one of the n gateways other than g, at random: what a
// load balancer does once it has taken the lost pod out.
func otherGateway(g, n int) int {
	if n < 2 {
		return 0
	}
	k := rand.IntN(n - 1)
	if k >= g {
		k++
	}
	return k
}

// closeInfo is the code and reason of the close frame that ended a read,
// or -1 when the connection ended without one (a killed process).
func closeInfo(err error) (int, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code), ce.Reason
	}
	return -1, "no close frame"
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ---- storm worker: a process of reconnecting clients ----

// clientEvent is one line a storm worker prints: a client up (welcome
// read) on gateway G, or down with the close code and reason, or the
// worker's own notes ("closed": every client closed on request).
type clientEvent struct {
	Kind   string `json:"k"`           // "up", "down", "fail" (an attempt), "bye" (closed on purpose), "closed" (all), "gaveup"
	Index  int    `json:"i"`           // global client index
	GW     int    `json:"g"`           // gateway index
	T      int64  `json:"t"`           // unix ns
	Code   int    `json:"c,omitempty"` // close code (-1: no close frame)
	Reason string `json:"r,omitempty"`
	Tries  int    `json:"n,omitempty"` // failed attempts before this up
}

type stormWorker struct {
	o      options
	out    *bufio.Writer
	outMu  sync.Mutex
	conns  []atomic.Pointer[websocket.Conn]
	closin atomic.Bool
	// dialErrs counts failed attempts; the first few are logged.
	dialErrs atomic.Int64
}

func (w *stormWorker) emit(e clientEvent) {
	b, _ := json.Marshal(e)
	w.outMu.Lock()
	_, _ = w.out.Write(append(b, '\n'))
	w.outMu.Unlock()
}

// runStormWorker holds o.conns clients, each reconnecting with the demo's
// backoff. stdin: "close" closes every client (1000) and stops them
// reconnecting; EOF ends the process. Bounded by -storm-deadline and
// -max-tries per drop.
func runStormWorker(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.stormDeadline)
	defer cancel()
	w := &stormWorker{o: o, out: bufio.NewWriterSize(os.Stdout, 64<<10), conns: make([]atomic.Pointer[websocket.Conn], o.conns)}
	// Flush the event lines every 100 ms (and at the end).
	flushDone := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-flushDone:
				return
			case <-t.C:
			}
			w.outMu.Lock()
			_ = w.out.Flush()
			w.outMu.Unlock()
		}
	}()
	defer func() {
		close(flushDone)
		w.outMu.Lock()
		_ = w.out.Flush()
		w.outMu.Unlock()
	}()

	// At most o.dialers first dials at once (the initial connect); the
	// reconnects after a drop are not throttled, like real clients.
	sem := make(chan struct{}, max(1, o.dialers))
	var wg sync.WaitGroup
	for i := range o.conns {
		wg.Go(func() { w.runClient(ctx, i, sem) })
	}
	go w.keepAlive(ctx)

	stdin := bufio.NewScanner(os.Stdin)
	for stdin.Scan() {
		if strings.TrimSpace(stdin.Text()) == "close" {
			w.closeAll()
		}
	}
	w.closin.Store(true)
	cancel()
	for i := range w.conns {
		if c := w.conns[i].Load(); c != nil {
			_ = c.CloseNow()
		}
	}
	wg.Wait()
	return nil
}

// closeAll closes every client at once with 1000, each in its own goroutine.
func (w *stormWorker) closeAll() {
	w.closin.Store(true)
	var wg sync.WaitGroup
	for i := range w.conns {
		if c := w.conns[i].Load(); c != nil {
			wg.Go(func() { _ = c.Close(websocket.StatusNormalClosure, "bye") })
		}
	}
	wg.Wait()
	w.emit(clientEvent{Kind: "closed", Index: -1, T: time.Now().UnixNano()})
}

func (w *stormWorker) runClient(ctx context.Context, i int, sem chan struct{}) {
	o := w.o
	global := o.offset + i
	g := global % len(o.gateways)
	id := fmt.Sprintf("%s-%d", o.prefix, global)
	src := sourceAddr(o.workerID, i)
	attempt, failed := 0, 0
	first := true
	for drops := 0; drops < 1000; drops++ {
		// Connect, retrying with backoff; each failure moves to the next gateway.
		var c *websocket.Conn
		for ; c == nil; attempt++ {
			if w.closin.Load() || ctx.Err() != nil {
				return
			}
			if attempt > o.maxTries {
				w.emit(clientEvent{Kind: "gaveup", Index: global, GW: g, T: time.Now().UnixNano(), Tries: failed})
				return
			}
			if first {
				sem <- struct{}{}
			}
			var err error
			c, err = dial(ctx, src, o.gateways[g], id)
			if first {
				<-sem
			}
			if err != nil {
				c = nil
				failed++
				var re *refusedError
				reason := "dial failed"
				if errors.As(err, &re) {
					reason = re.reason
				} else if w.dialErrs.Add(1) <= 3 {
					log.Printf("worker %d: client %s on %s: %v", o.workerID, id, o.gateways[g], err)
				}
				w.emit(clientEvent{Kind: "fail", Index: global, GW: g, T: time.Now().UnixNano(), Reason: reason})
				g = otherGateway(g, len(o.gateways))
				if !sleepCtx(ctx, backoffDelay(attempt, o.backoffBase, o.backoffCap)) {
					return
				}
			}
		}
		first = false
		w.conns[i].Store(c)
		w.emit(clientEvent{Kind: "up", Index: global, GW: g, T: time.Now().UnixNano(), Tries: failed})
		if o.closeOnWelcome {
			w.conns[i].Store(nil)
			_ = c.Close(websocket.StatusNormalClosure, "bye")
			w.emit(clientEvent{Kind: "bye", Index: global, GW: g, T: time.Now().UnixNano()})
			return
		}
		attempt, failed = 0, 0 // the welcome proves the gateway serves: reset the backoff
		var err error
		for err == nil {
			_, _, err = c.Read(ctx)
		}
		w.conns[i].Store(nil)
		if w.closin.Load() || ctx.Err() != nil {
			_ = c.CloseNow()
			return
		}
		code, reason := closeInfo(err)
		_ = c.CloseNow()
		w.emit(clientEvent{Kind: "down", Index: global, GW: g, T: time.Now().UnixNano(), Code: code, Reason: reason})
		g = otherGateway(g, len(o.gateways))
		if !sleepCtx(ctx, backoffDelay(attempt, o.backoffBase, o.backoffCap)) {
			return
		}
		attempt = 1
	}
}

// keepAlive sends "ping" on every open connection once per o.ping, a
// fiftieth of them per tick.
func (w *stormWorker) keepAlive(ctx context.Context) {
	const slices = 50
	t := time.NewTicker(w.o.ping / slices)
	defer t.Stop()
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i := k % slices; i < len(w.conns); i += slices {
			if c := w.conns[i].Load(); c != nil {
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_ = c.Write(wctx, websocket.MessageText, []byte("ping"))
				cancel()
			}
		}
	}
}

// ---- presence frames ----

type presenceUser struct {
	UserID      string `json:"userId"`
	Online      bool   `json:"online"`
	Status      string `json:"status"`
	Text        string `json:"text"`
	Connections int    `json:"connections"`
	LastSeen    int64  `json:"lastSeen"`
	Version     int64  `json:"version"`
}

type frame struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id"`
	Code  string          `json:"code"`
	Users []presenceUser  `json:"users"`
}

// ---- watcher: subscribes to users, keeps the newest state of each ----

type offlineEvent struct {
	user string
	t    time.Time
}

// watcher is one watching client with one or more connections (at most
// 1,000 users per connection, the gateway's limit), each subscribing in
// requests of 100 ids. It reads as fast as it can: a goroutine per
// connection only reads and hands the bytes to a parser.
type watcher struct {
	name     string
	gateways []string
	gw       int
	src      func(conn, attempt int) *net.TCPAddr
	users    []string
	cfg      *options

	mu        sync.Mutex
	book      map[string]presenceUser
	offline   []offlineEvent
	events    int64
	closes    map[string]int // "code reason" of every connection end not asked for
	cuts      int            // 1008 closes
	reconnect int
	ready     sync.WaitGroup
}

func newWatcher(name string, gateways []string, gw int, users []string, cfg *options, src func(conn, attempt int) *net.TCPAddr) *watcher {
	w := &watcher{name: name, gateways: gateways, gw: gw, users: users, cfg: cfg, src: src,
		book: map[string]presenceUser{}, closes: map[string]int{}}
	return w
}

// start runs the watcher's connections until ctx ends; ready is done once
// every connection has its first snapshot.
func (w *watcher) start(ctx context.Context) {
	for k := 0; k*1000 < len(w.users); k++ {
		part := w.users[k*1000 : min(len(w.users), (k+1)*1000)]
		w.ready.Add(1)
		go w.runConn(ctx, k, part)
	}
}

func (w *watcher) runConn(ctx context.Context, k int, users []string) {
	var once sync.Once
	markReady := func() { once.Do(w.ready.Done) }
	defer markReady()
	g := (w.gw + k) % len(w.gateways)
	attempt := 0
	for try := 0; try < 1000 && ctx.Err() == nil; try++ {
		c, err := dial(ctx, w.src(k, try), w.gateways[g], fmt.Sprintf("%s-c%d", w.name, k))
		if err != nil {
			g = otherGateway(g, len(w.gateways))
			if !sleepCtx(ctx, backoffDelay(attempt, w.cfg.backoffBase, w.cfg.backoffCap)) {
				return
			}
			attempt++
			continue
		}
		err = w.serve(ctx, c, users, markReady)
		_ = c.CloseNow()
		if ctx.Err() != nil {
			return
		}
		code, reason := closeInfo(err)
		w.mu.Lock()
		w.closes[fmt.Sprintf("%d %s", code, reason)]++
		if code == int(websocket.StatusPolicyViolation) {
			w.cuts++
		}
		w.reconnect++
		w.mu.Unlock()
		g = otherGateway(g, len(w.gateways))
		if !sleepCtx(ctx, backoffDelay(0, w.cfg.backoffBase, w.cfg.backoffCap)) {
			return
		}
		attempt = 1
	}
}

// serve subscribes and reads until the connection ends.
func (w *watcher) serve(ctx context.Context, c *websocket.Conn, users []string, markReady func()) error {
	frames := make(chan []byte, 1<<14)
	readErr := make(chan error, 1)
	go func() {
		defer close(frames)
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			frames <- b
		}
	}()
	// Keep-alive, and the subscribe requests (100 ids each).
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	go func() {
		for j := 0; j*100 < len(users); j++ {
			sub, _ := json.Marshal(map[string]any{"type": "subscribe", "id": fmt.Sprintf("s%d", j),
				"userIds": users[j*100 : min(len(users), (j+1)*100)]})
			wctx, cancel := context.WithTimeout(kctx, 5*time.Second)
			err := c.Write(wctx, websocket.MessageText, sub)
			cancel()
			if err != nil {
				return
			}
		}
		for sleepCtx(kctx, w.cfg.ping) {
			wctx, cancel := context.WithTimeout(kctx, 5*time.Second)
			_ = c.Write(wctx, websocket.MessageText, []byte("ping"))
			cancel()
		}
	}()
	want := (len(users) + 99) / 100
	snaps := 0
	for b := range frames {
		var f frame
		if json.Unmarshal(b, &f) != nil || f.Type != "presence" {
			continue
		}
		snapshot := len(f.ID) > 0
		now := time.Now()
		w.mu.Lock()
		for _, u := range f.Users {
			held, ok := w.book[u.UserID]
			if ok && (u.Version < held.Version || (!snapshot && u.Version == held.Version)) {
				continue
			}
			w.book[u.UserID] = u
			if !snapshot {
				w.events++
				if !u.Online {
					w.offline = append(w.offline, offlineEvent{u.UserID, now})
				}
			}
		}
		w.mu.Unlock()
		if snapshot {
			if snaps++; snaps == want {
				markReady()
			}
		}
	}
	return <-readErr
}

// ---- prober: status writes every interval, timing the failures ----

type prober struct {
	user     string
	gateways []string
	gw       int
	src      *net.TCPAddr
	every    time.Duration
	timeout  time.Duration
	cfg      *options

	mu         sync.Mutex
	pending    map[int64]probeWrite
	fails      []time.Time // send time of each write that got an error or no answer in time
	errs       map[string]int
	ok         int
	last       probeWrite  // the newest acknowledged write
	drops      []time.Time // when the prober's connection dropped
	dropCodes  map[string]int
	stopWrites atomic.Bool
	conn       atomic.Pointer[websocket.Conn]
	nextID     atomic.Int64
}

type probeWrite struct {
	status, text string
	sent         time.Time
	id           int64
}

func newProber(user string, gateways []string, gw int, src *net.TCPAddr, cfg *options) *prober {
	return &prober{user: user, gateways: gateways, gw: gw, src: src, every: 50 * time.Millisecond,
		timeout: 2 * time.Second, cfg: cfg, pending: map[int64]probeWrite{}, errs: map[string]int{}, dropCodes: map[string]int{}}
}

// run keeps the prober connected (reconnecting with backoff) until ctx ends.
func (p *prober) run(ctx context.Context, ready chan<- struct{}) {
	var once sync.Once
	defer once.Do(func() { close(ready) })
	g := p.gw
	attempt := 0
	for try := 0; try < 1000 && ctx.Err() == nil; try++ {
		c, err := dial(ctx, p.src, p.gateways[g], p.user)
		if err != nil {
			g = otherGateway(g, len(p.gateways))
			if !sleepCtx(ctx, backoffDelay(attempt, p.cfg.backoffBase, p.cfg.backoffCap)) {
				return
			}
			attempt++
			continue
		}
		p.conn.Store(c)
		once.Do(func() { close(ready) })
		for {
			var b []byte
			_, b, err = c.Read(ctx)
			if err != nil {
				break
			}
			var f struct {
				Type string `json:"type"`
				ID   int64  `json:"id"`
				Code string `json:"code"`
			}
			if json.Unmarshal(b, &f) != nil || f.ID == 0 {
				continue
			}
			p.mu.Lock()
			if pw, ok := p.pending[f.ID]; ok {
				delete(p.pending, f.ID)
				switch f.Type {
				case "ok":
					p.ok++
					if pw.id > p.last.id {
						p.last = pw
					}
				case "error":
					p.errs[f.Code]++
					if f.Code != "rate_limited" {
						p.fails = append(p.fails, pw.sent)
					}
				}
			}
			p.mu.Unlock()
		}
		p.conn.Store(nil)
		_ = c.CloseNow()
		if ctx.Err() != nil {
			return
		}
		code, reason := closeInfo(err)
		p.mu.Lock()
		p.drops = append(p.drops, time.Now())
		p.dropCodes[fmt.Sprintf("%d %s", code, reason)]++
		p.mu.Unlock()
		g = otherGateway(g, len(p.gateways))
		if !sleepCtx(ctx, backoffDelay(0, p.cfg.backoffBase, p.cfg.backoffCap)) {
			return
		}
		attempt = 1
	}
}

// write sends one status change; its answer is matched in run.
func (p *prober) write(ctx context.Context, status, text string) {
	c := p.conn.Load()
	now := time.Now()
	id := p.nextID.Add(1)
	pw := probeWrite{status: status, text: text, sent: now, id: id}
	if c == nil {
		p.mu.Lock()
		p.fails = append(p.fails, now)
		p.errs["not connected"]++
		p.mu.Unlock()
		return
	}
	msg, _ := json.Marshal(map[string]any{"type": "status", "id": id, "status": status, "text": text})
	p.mu.Lock()
	p.pending[id] = pw
	p.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := c.Write(wctx, websocket.MessageText, msg); err != nil {
		p.mu.Lock()
		if _, ok := p.pending[id]; ok {
			delete(p.pending, id)
			p.fails = append(p.fails, now)
			p.errs["write failed"]++
		}
		p.mu.Unlock()
	}
}

// expire counts the writes unanswered for p.timeout as failed.
func (p *prober) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, pw := range p.pending {
		if now.Sub(pw.sent) > p.timeout {
			delete(p.pending, id)
			p.fails = append(p.fails, pw.sent)
			p.errs["no answer in "+p.timeout.String()]++
		}
	}
}

// loop writes every p.every until ctx ends or stopWrites.
func (p *prober) loop(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	statuses := []string{"away", "busy"}
	for k := 0; !p.stopWrites.Load(); k++ {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.expire(now)
		}
		p.write(ctx, statuses[k%2], fmt.Sprintf("p%d", k))
	}
}

// dropsIn counts the prober's connection drops in [from, to).
func (p *prober) dropsIn(from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, t := range p.drops {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// failWindow is first-fail to last-fail among writes sent in [from, to).
func (p *prober) failWindow(from, to time.Time) (n int, first, last time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.fails {
		if t.Before(from) || !t.Before(to) {
			continue
		}
		if n == 0 || t.Before(first) {
			first = t
		}
		if n == 0 || t.After(last) {
			last = t
		}
		n++
	}
	return n, first, last
}
