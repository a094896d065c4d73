package shardsub

import "sync"

// DefaultQueueLen is how many messages a connection's inbox queues, in
// order, before it starts coalescing (Options.QueueLen).
const DefaultQueueLen = 1024

// maxInbox bounds the channels with a message waiting in one connection's
// inbox once it coalesces. Redis pushes messages only for channels
// subscribed on that connection, so the inbox cannot in practice hold more
// channels than are subscribed; past this bound (a server pushing for
// channels never asked) the reader waits for the deliverer rather than drop
// a final state.
const maxInbox = 1 << 20

// message is one pushed message waiting for delivery.
type message struct{ channel, payload string }

// inbox is a connection's hand-off from its reader to its deliverer. put
// never waits on the handler. While the deliverer keeps up (fewer than
// queueLen messages waiting) every message is queued and delivered, in
// order. Once it falls behind, latest state wins: a message of a channel
// that already has one waiting replaces it in place (counted as coalesced;
// the older one is never delivered). So the last message of every channel
// is delivered, messages of one channel stay in order, and a backlog holds
// at most queueLen messages plus one per channel.
type inbox struct {
	mu       sync.Mutex
	queue    []message
	last     map[string]int // channel -> index in queue of its newest message
	queueLen int
	coal     int           // messages replaced since the last take
	space    *sync.Cond    // signalled when the deliverer empties the inbox
	wake     chan struct{} // cap 1: something is waiting
	done     <-chan struct{}
}

func newInbox(done <-chan struct{}, queueLen int) *inbox {
	in := &inbox{last: map[string]int{}, queueLen: queueLen, wake: make(chan struct{}, 1), done: done}
	in.space = sync.NewCond(&in.mu)
	return in
}

// put hands a message over; it returns at once unless the inbox is full.
func (in *inbox) put(channel, payload string) {
	in.mu.Lock()
	if i, ok := in.last[channel]; ok && len(in.queue) >= in.queueLen {
		in.queue[i].payload = payload
		in.coal++
		in.mu.Unlock()
		in.signal()
		return
	}
	for len(in.queue) >= in.queueLen+maxInbox {
		in.space.Wait()
	}
	in.last[channel] = len(in.queue)
	in.queue = append(in.queue, message{channel, payload})
	in.mu.Unlock()
	in.signal()
}

func (in *inbox) signal() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// take returns what is waiting, and how many messages were replaced, and
// empties the inbox.
func (in *inbox) take() ([]message, int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	q, n := in.queue, in.coal
	in.coal = 0
	if len(q) > 0 {
		in.queue = nil
		clear(in.last)
		in.space.Broadcast()
	}
	return q, n
}

// deliver calls onMessage for every message handed over, until the
// connection is closed and nothing is left. onCoalesced (optional) is told
// how many messages newer ones replaced.
func (in *inbox) deliver(onMessage func(channel, payload string), onCoalesced func(int)) {
	for {
		select {
		case <-in.wake:
		case <-in.done:
			select {
			case <-in.wake:
			default:
				return // closed, and nothing was put since the last take
			}
		}
		q, n := in.take()
		if n > 0 && onCoalesced != nil {
			onCoalesced(n)
		}
		for _, m := range q {
			onMessage(m.channel, m.payload)
		}
	}
}
