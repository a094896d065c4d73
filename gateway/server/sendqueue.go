package server

import (
	"bytes"

	"github.com/presencekit/presence-operator/gateway/protocol"
)

// maxQueuedBytes bounds the answers (welcome, snapshots, pongs, oks,
// errors) waiting for one client, in bytes. The largest answer is a
// 100-user presence frame, about 50 KB at the longest ids and texts;
// 256 KiB holds several of them on top of what the socket buffers hold. A
// client whose answers go past it is a slow consumer.
const maxQueuedBytes = 256 << 10

// maxUsersPerFrame bounds the users written in one presence event frame:
// no more than an answer to one request carries, so that no client needs
// a larger read limit than it already does.
const maxUsersPerFrame = protocol.MaxIDsPerRequest

type outFrame struct {
	kind string
	data []byte
}

// pendingEvent is the newest presence event about one user not yet
// written; frame is nil once the user was unsubscribed.
type pendingEvent struct {
	userID string
	frame  []byte
}

// sendQueue is what a client has not been sent yet: answers, in order and
// bounded in bytes, and presence events, at most one per user. Presence is
// latest state wins: a newer event about a user replaces the pending one
// (the hub hands them over in version order), so a watcher of N users
// never holds more than N pending events, however many changes a storm
// makes. The zero value is an empty queue holding no memory.
type sendQueue struct {
	frames []outFrame
	bytes  int

	events  []pendingEvent
	eventAt map[string]int // user id -> index in events
}

// push queues an answer; false when it would pass maxQueuedBytes.
func (q *sendQueue) push(kind string, data []byte) bool {
	if q.bytes+len(data) > maxQueuedBytes {
		return false
	}
	q.frames = append(q.frames, outFrame{kind, data})
	q.bytes += len(data)
	return true
}

// pushEvent queues a presence event about userID, replacing the pending
// one if any; it reports whether it replaced one (coalesced).
func (q *sendQueue) pushEvent(userID string, frame []byte) bool {
	if i, ok := q.eventAt[userID]; ok {
		q.events[i].frame = frame
		return true
	}
	if q.eventAt == nil {
		q.eventAt = make(map[string]int)
	}
	q.eventAt[userID] = len(q.events)
	q.events = append(q.events, pendingEvent{userID, frame})
	return false
}

// dropEvents forgets the pending events about users no longer watched.
func (q *sendQueue) dropEvents(userIDs []string) {
	for _, id := range userIDs {
		if i, ok := q.eventAt[id]; ok {
			q.events[i].frame = nil
			delete(q.eventAt, id)
		}
	}
}

// empty reports whether nothing is queued.
func (q *sendQueue) empty() bool { return len(q.frames) == 0 && len(q.events) == 0 }

// take hands everything queued to the writer and empties the queue,
// keeping the map's memory for the events that arrive while it writes.
func (q *sendQueue) take() ([]outFrame, []pendingEvent) {
	frames, events := q.frames, q.events
	q.frames, q.bytes, q.events = nil, 0, nil
	clear(q.eventAt)
	return frames, events
}

// release gives the memory back while the client is idle.
func (q *sendQueue) release() { *q = sendQueue{} }

// eventUsers splits a presence event frame, {"type":"presence",...,
// "users":[U]}, into its head (up to and with the users' opening bracket)
// and its list of users; ok is false for any other shape.
func eventUsers(frame []byte) (head, users []byte, ok bool) {
	i := bytes.Index(frame, usersKey)
	if i < 0 || !bytes.HasSuffix(frame, frameTail) {
		return nil, nil, false
	}
	head = frame[:i+len(usersKey)]
	users = frame[len(head) : len(frame)-len(frameTail)]
	return head, users, len(users) > 0
}

var (
	usersKey  = []byte(`"users":[`)
	frameTail = []byte(`]}`)
)

// batchEvents merges presence event frames into as few frames as the
// protocol allows (one presence frame lists several users), at most
// maxUsersPerFrame users each, in order. A frame of another shape is kept
// as it is.
func batchEvents(events []pendingEvent) [][]byte {
	var out [][]byte
	var cur []byte // the frame being built, without its tail
	var head []byte
	n := 0
	flush := func() {
		if cur != nil {
			out = append(out, append(cur, frameTail...))
			cur, head, n = nil, nil, 0
		}
	}
	for _, e := range events {
		if e.frame == nil {
			continue
		}
		h, users, ok := eventUsers(e.frame)
		if !ok {
			flush()
			out = append(out, e.frame)
			continue
		}
		if cur != nil && (n == maxUsersPerFrame || !bytes.Equal(h, head)) {
			flush()
		}
		if cur == nil {
			head = h
			cur = append(make([]byte, 0, len(e.frame)*min(len(events), maxUsersPerFrame)), h...)
		} else {
			cur = append(cur, ',')
		}
		cur = append(cur, users...)
		n++
	}
	flush()
	return out
}
