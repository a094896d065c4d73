package shardsub

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/presencekit/presence-operator/internal/poll"
)

// recorder collects delivered messages.
type recorder struct {
	mu   sync.Mutex
	msgs []string // "channel=payload"
}

func (r *recorder) add(ch, payload string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, ch+"="+payload)
}

func (r *recorder) of(ch string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		if len(m) > len(ch) && m[:len(ch)+1] == ch+"=" {
			out = append(out, m[len(ch)+1:])
		}
	}
	return out
}

func (r *recorder) waitFor(t *testing.T, ch, payload string) {
	t.Helper()
	poll.Eventually(t, 5*time.Second, ch+"="+payload+" delivered", func() (bool, string) {
		got := r.of(ch)
		return slices.Contains(got, payload), fmt.Sprint(got)
	})
}

// startClient runs a client on router until the test ends.
func startClient(t *testing.T, o Options) *Client {
	t.Helper()
	o.Backoff = wait.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 1 << 20, Cap: 200 * time.Millisecond}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		c.Close()
	})
	return c
}

func subscribe(t *testing.T, c *Client, ch string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Subscribe(ctx, ch); err != nil {
		t.Fatalf("Subscribe(%q): %v", ch, err)
	}
}

func TestSubscribeDeliverUnsubscribe(t *testing.T) {
	a := newFakeNode(t)
	rec := &recorder{}
	c := startClient(t, Options{Router: &fakeRouter{nodes: map[string]string{"a": a.addr}}, OnMessage: rec.add})
	subscribe(t, c, "a:1")
	if !a.subscribed("a:1") || c.Count() != 1 {
		t.Fatalf("after Subscribe: node subscribed %v, Count %d", a.subscribed("a:1"), c.Count())
	}
	for i := range 3 {
		a.publish("a:1", fmt.Sprint("p", i))
	}
	rec.waitFor(t, "a:1", "p2")
	if got := rec.of("a:1"); !slices.IsSorted(got) {
		t.Fatalf("messages of one channel out of order: %v", got)
	}
	if err := c.Unsubscribe(context.Background(), "a:1"); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, "unsubscribed on the node", func() (bool, string) {
		return !a.subscribed("a:1"), "still subscribed"
	})
	if c.Count() != 0 {
		t.Fatalf("Count after Unsubscribe: %d", c.Count())
	}
}

// A handler that blocks on one channel's message must not stall the reads
// of that node (the reply to another SSUBSCRIBE on the same connection) nor
// the delivery of another node's messages; past the queue length, the
// messages of the blocked channel that pile up are coalesced to the newest,
// which is delivered once the handler returns.
func TestSlowHandlerDoesNotStallReads(t *testing.T) {
	a, b := newFakeNode(t), newFakeNode(t)
	rec := &recorder{}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var coalesced atomic.Int64
	c := startClient(t, Options{
		Router: &fakeRouter{nodes: map[string]string{"a": a.addr, "b": b.addr}},
		OnMessage: func(ch, payload string) {
			if ch == "a:slow" && payload == "1" {
				once.Do(func() { close(entered) })
				<-release
			}
			rec.add(ch, payload)
		},
		OnCoalesced: func(n int) { coalesced.Add(int64(n)) },
		QueueLen:    1,
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	subscribe(t, c, "a:slow")
	subscribe(t, c, "b:x")
	a.publish("a:slow", "1")
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never got the first message")
	}

	// The handler is blocked. Node a's connection still reads replies...
	subscribe(t, c, "a:other")
	// ...and node b's messages are still delivered.
	b.publish("b:x", "hello")
	rec.waitFor(t, "b:x", "hello")

	for _, p := range []string{"2", "3", "4"} {
		a.publish("a:slow", p)
	}
	a.publish("a:other", "marker")
	c.mu.Lock()
	in := c.conns[a.addr].in
	c.mu.Unlock()
	poll.Eventually(t, 5*time.Second, "node a's messages read while the handler is blocked", func() (bool, string) {
		in.mu.Lock()
		defer in.mu.Unlock()
		want := []message{{"a:slow", "4"}, {"a:other", "marker"}}
		return slices.Equal(in.queue, want), fmt.Sprint(in.queue)
	})
	close(release)
	rec.waitFor(t, "a:slow", "4")
	rec.waitFor(t, "a:other", "marker")
	if got := rec.of("a:slow"); !slices.Equal(got, []string{"1", "4"}) {
		t.Fatalf("a:slow delivered %v, want [1 4]: the newest state, once", got)
	}
	if n := coalesced.Load(); n != 2 {
		t.Fatalf("coalesced %d messages, want 2 (payloads 2 and 3)", n)
	}
}

// After its connection is lost, every channel is subscribed again, each by
// its own SSUBSCRIBE (a node rejects several channels of different slots in
// one with CROSSSLOT), and OnResync is told which channels came back.
func TestResubscribesEachChannelAfterConnectionLoss(t *testing.T) {
	a := newFakeNode(t)
	rec := &recorder{}
	var mu sync.Mutex
	var resynced []string
	c := startClient(t, Options{
		Router:    &fakeRouter{nodes: map[string]string{"a": a.addr}},
		OnMessage: rec.add,
		OnResync: func(chs []string) error {
			mu.Lock()
			defer mu.Unlock()
			resynced = append(resynced, chs...)
			return nil
		},
	})
	subscribe(t, c, "a:1")
	subscribe(t, c, "a:2")
	a.dropAll()
	poll.Eventually(t, 5*time.Second, "both channels subscribed again and resynced", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		ok := a.subscribed("a:1") && a.subscribed("a:2") && slices.Contains(resynced, "a:1") && slices.Contains(resynced, "a:2")
		return ok, fmt.Sprintf("resynced %v", resynced)
	})
	a.publish("a:2", "after")
	rec.waitFor(t, "a:2", "after")
}

// A Subscribe whose context ends while Redis does not answer returns, and
// does not leave the channel half-subscribed.
func TestSubscribeHonoursContext(t *testing.T) {
	a := newFakeNode(t)
	a.mu.Lock()
	a.hold = make(chan struct{})
	a.mu.Unlock()
	t.Cleanup(func() { close(a.hold) })
	c := startClient(t, Options{Router: &fakeRouter{nodes: map[string]string{"a": a.addr}}, OnMessage: func(string, string) {}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Subscribe(ctx, "a:1"); err == nil {
		t.Fatal("Subscribe returned nil although the node never confirmed")
	}
	if c.Count() != 0 {
		t.Fatalf("Count %d after a failed Subscribe, want 0", c.Count())
	}
}

// Below the queue length nothing is coalesced: a short backlog delivers
// every message, in order (one event per change).
func TestShortBacklogDeliversEveryMessage(t *testing.T) {
	a := newFakeNode(t)
	rec := &recorder{}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var coalesced atomic.Int64
	c := startClient(t, Options{
		Router: &fakeRouter{nodes: map[string]string{"a": a.addr}},
		OnMessage: func(ch, payload string) {
			once.Do(func() { close(entered); <-release })
			rec.add(ch, payload)
		},
		OnCoalesced: func(n int) { coalesced.Add(int64(n)) },
	})
	subscribe(t, c, "a:1")
	a.publish("a:1", "000")
	<-entered
	var want []string
	for i := range 100 {
		p := fmt.Sprintf("%03d", i+1)
		want = append(want, p)
		a.publish("a:1", p)
	}
	close(release)
	rec.waitFor(t, "a:1", "100")
	if got := rec.of("a:1"); !slices.Equal(got, append([]string{"000"}, want...)) || coalesced.Load() != 0 {
		t.Fatalf("delivered %v (coalesced %d), want all 101 in order", got, coalesced.Load())
	}
}
