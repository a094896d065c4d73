package hub_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/presencekit/presence-operator/gateway/presence"
)

type countSub struct{ n atomic.Int64 }

func (s *countSub) Deliver(string, []byte) { s.n.Add(1) }

// BenchmarkPublishTo1000Watchers: one change of a user fanned out to 1000
// local connections (encoded once, queued 1000 times).
func BenchmarkPublishTo1000Watchers(b *testing.B) {
	h, _, _ := newHub(b)
	ctx := context.Background()
	for range 1000 {
		if err := h.Subscribe(ctx, &countSub{}, []string{"star"}); err != nil {
			b.Fatal(err)
		}
	}
	v := int64(0)
	for b.Loop() {
		v++
		h.Publish(presence.User{UserID: "star", Online: true, Status: presence.StatusOnline, Connections: 1, Version: v})
	}
}
