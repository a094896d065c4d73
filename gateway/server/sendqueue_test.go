package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/protocol"
)

func event(id string, version int64) []byte {
	return protocol.EncodePresence(nil, []presence.User{{UserID: id, Online: version%2 == 1, Status: presence.StatusOnline, Version: version}})
}

func TestSendQueueLatestStateWins(t *testing.T) {
	var q sendQueue
	for v := int64(1); v <= 50; v++ {
		for _, id := range []string{"a", "b", "c"} {
			coalesced := q.pushEvent(id, event(id, v))
			if coalesced != (v > 1) {
				t.Fatalf("%s v%d: coalesced %v", id, v, coalesced)
			}
		}
	}
	if !q.push(kindPong, protocol.PongText) {
		t.Fatal("a pong refused")
	}
	frames, events := q.take()
	if len(frames) != 1 || len(events) != 3 {
		t.Fatalf("%d answers and %d events pending, want 1 and 3 (one per user)", len(frames), len(events))
	}
	for i, id := range []string{"a", "b", "c"} {
		if events[i].userID != id || !strings.Contains(string(events[i].frame), `"version":50`) {
			t.Fatalf("event %d: %s %s, want %s at version 50", i, events[i].userID, events[i].frame, id)
		}
	}
	if !q.empty() {
		t.Fatal("take left something queued")
	}
	// After take, a user's next event is queued anew.
	if q.pushEvent("a", event("a", 51)) {
		t.Fatal("an event after take was coalesced with one already taken")
	}
	q.release()
	if q.eventAt != nil || q.events != nil || q.frames != nil {
		t.Fatal("release kept memory")
	}
}

func TestSendQueueByteBound(t *testing.T) {
	var q sendQueue
	big := make([]byte, maxQueuedBytes/4)
	for i := range 4 {
		if !q.push(kindPresence, big) {
			t.Fatalf("answer %d refused under the bound", i)
		}
	}
	if q.push(kindPong, protocol.PongText) {
		t.Fatal("an answer past maxQueuedBytes was queued")
	}
	// Events are bounded by the users watched, not by the byte bound.
	if q.pushEvent("a", event("a", 1)) {
		t.Fatal("coalesced")
	}
	q.take()
	if !q.push(kindPong, protocol.PongText) {
		t.Fatal("the bound counts only what is still queued")
	}
}

func TestSendQueueDropEvents(t *testing.T) {
	var q sendQueue
	q.pushEvent("a", event("a", 1))
	q.pushEvent("b", event("b", 1))
	q.dropEvents([]string{"a", "never"})
	if q.pushEvent("a", event("a", 2)) {
		t.Fatal("an event after unsubscribing replaced the dropped one")
	}
	_, events := q.take()
	got := batchEvents(events)
	if len(got) != 1 {
		t.Fatalf("%d frames", len(got))
	}
	us := decodeUsers(t, got[0])
	if len(us) != 2 || us[0].UserID != "b" || us[1].UserID != "a" || us[1].Version != 2 {
		t.Fatalf("users %+v, want b then a at version 2", us)
	}
}

func decodeUsers(t *testing.T, frame []byte) []presence.User {
	t.Helper()
	var f struct {
		Type  string           `json:"type"`
		ID    *json.RawMessage `json:"id"`
		Users []presence.User  `json:"users"`
	}
	if err := json.Unmarshal(frame, &f); err != nil || f.Type != "presence" || f.ID != nil {
		t.Fatalf("frame %s is not a presence event: %v", frame, err)
	}
	return f.Users
}

func TestBatchEvents(t *testing.T) {
	var events []pendingEvent
	for i := range 250 {
		id := fmt.Sprint("u", i)
		events = append(events, pendingEvent{id, event(id, int64(i+1))})
	}
	events[7].frame = nil // unsubscribed
	frames := batchEvents(events)
	if len(frames) != 3 {
		t.Fatalf("%d frames for 249 users, want 3 of at most %d", len(frames), maxUsersPerFrame)
	}
	var all []presence.User
	for _, f := range frames {
		us := decodeUsers(t, f)
		if len(us) > maxUsersPerFrame {
			t.Fatalf("%d users in one frame", len(us))
		}
		all = append(all, us...)
	}
	if len(all) != 249 || all[0].UserID != "u0" || all[7].UserID != "u8" || all[248].UserID != "u249" || all[248].Version != 250 {
		t.Fatalf("users in order, without u7: got %d, first %+v", len(all), all[0])
	}
	// A frame of another shape passes through as it is.
	odd := []byte(`{"type":"presence","users":[]}`)
	got := batchEvents([]pendingEvent{{"a", event("a", 1)}, {"x", odd}, {"b", event("b", 1)}})
	if len(got) != 3 || string(got[1]) != string(odd) {
		t.Fatalf("got %q", got)
	}
}
