package memstore_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/memstore"
)

func newBenchStore(b *testing.B) *memstore.Store {
	s, err := memstore.New(presence.Options{TTL: time.Minute, Heartbeat: 20 * time.Second,
		OnEvent: func(presence.User) {}, Metrics: presence.NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkConnectDisconnect(b *testing.B) {
	s := newBenchStore(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		c := presence.Conn{UserID: "u" + strconv.Itoa(i%1000), ID: strconv.Itoa(i)}
		if _, err := s.Connect(ctx, c); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Disconnect(ctx, c); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGet100Of10k(b *testing.B) {
	s := newBenchStore(b)
	ctx := context.Background()
	for i := range 10000 {
		if _, err := s.Connect(ctx, presence.Conn{UserID: "u" + strconv.Itoa(i), ID: strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = "u" + strconv.Itoa(i*97)
	}
	for b.Loop() {
		if _, err := s.Get(ctx, ids); err != nil {
			b.Fatal(err)
		}
	}
}
