package protocol

import (
	"strings"
	"testing"

	"github.com/presencekit/presence-operator/gateway/presence"
)

func BenchmarkDecodeTextPing(b *testing.B) {
	data := []byte("ping")
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeQuery100(b *testing.B) {
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = `"user-` + strings.Repeat("x", i%10) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `"`
	}
	data := []byte(`{"type":"query","id":1,"userIds":[` + strings.Join(ids, ",") + `]}`)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeStatus: the frame of the latency benchmark's actors.
func BenchmarkDecodeStatus(b *testing.B) {
	data := []byte(`{"type":"status","status":"away","text":"1764190000000000000"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodePresenceEvent(b *testing.B) {
	u := []presence.User{{UserID: "alice", Online: true, Status: presence.StatusAway, Text: "lunch", Connections: 2, LastSeen: 1764190000000, Version: 7}}
	for b.Loop() {
		_ = EncodePresence(nil, u)
	}
}
