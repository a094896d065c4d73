package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/internal/poll"
)

// TestStrictDecoding: keys match case-sensitively, a key given twice is
// refused, and the id is echoed whenever it can be read (issue 9, defect 7).
func TestStrictDecoding(t *testing.T) {
	g := start(t, setup{})
	c := g.dialWelcome("u1")
	for _, tc := range []struct {
		frame string
		id    any // the echoed id; nil when none
	}{
		{`{"TYPE":"ping"}`, nil},
		{`{"Type":"ping","id":"x"}`, "x"},
		{`{"type":"ping","type":"ping","id":4}`, float64(4)},
		{`{"type":1,"id":8}`, float64(8)},
		{`{"type":"status","status":"away","text":"\ud800","id":9}`, float64(9)},
	} {
		c.sendText(tc.frame)
		if m := c.expectError("bad_request"); m["id"] != tc.id {
			t.Fatalf("%s: error %v, want id %v", tc.frame, m, tc.id)
		}
	}
	c.alive()
}

// TestInvalidUTF8ClosesWith1007: a text frame that is not UTF-8 fails the
// connection with 1007 (RFC 6455 section 8.1), a status text included.
func TestInvalidUTF8ClosesWith1007(t *testing.T) {
	g := start(t, setup{})
	stays := g.dialWelcome("u1") // keeps u1 online, so its status can be read after
	c := g.dialWelcome("u1")
	c.sendText("{\"type\":\"status\",\"status\":\"away\",\"text\":\"\xff\xfe\"}")
	c.expectClose(websocket.StatusInvalidFramePayloadData, "UTF-8")
	poll.Eventually(t, 5*time.Second, "the disconnection counted as invalid_utf8", func() (bool, string) {
		n := g.counter(g.metrics.DisconnectionsTotal.WithLabelValues("invalid_utf8"))
		return n == 1, fmt.Sprintf("invalid_utf8 disconnections = %v", n)
	})
	// The status was not set.
	stays.send(map[string]any{"type": "query", "userIds": []string{"u1"}})
	if u := users(t, stays.expectType("presence"))["u1"]; u["status"] != "online" || u["text"] != "" {
		t.Fatalf("u1 after the refused frame: %v, want online without text", u)
	}
}
