package main_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/procfs"

	"github.com/presencekit/presence-operator/internal/poll"
)

// BenchmarkIdleConnectionRSS measures the gateway's resident memory per
// idle WebSocket connection: it starts the real binary, opens
// PRESENCE_BENCH_CONNS (default 10000) connections from this process, each
// reading its welcome and then staying silent, and reports the growth of
// the gateway's VmRSS divided by the connections, in bytes (RSS-B/conn).
//
//	go test -run '^$' -bench IdleConnectionRSS -benchtime 1x ./cmd/presence-gateway/
func BenchmarkIdleConnectionRSS(b *testing.B) {
	n := 10000
	if v := os.Getenv("PRESENCE_BENCH_CONNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("PRESENCE_BENCH_CONNS=%q: not a positive integer", v)
		}
	}
	p := run(b, "IDLE_TIMEOUT=1h", "LOG_LEVEL=warn")
	before := rss(b, p.Cmd.Process.Pid)
	// Raw connections that never send: the gateway's memory per bare idle
	// connection, without a client's keep-alive traffic.
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.CloseNow()
		}
	}()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := dial(ctx, p.WS+"/?userId=idle"+strconv.Itoa(i))
		if err != nil {
			cancel()
			b.Fatalf("connection %d: %v", i, err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			cancel()
			b.Fatalf("welcome %d: %v", i, err)
		}
		cancel()
		conns = append(conns, c)
	}
	want := fmt.Sprintf("presence_gateway_connections %d", n)
	poll.Eventually(b, 30*time.Second, "/metrics shows "+want, func() (bool, string) {
		body := scrape(b, p.Metrics)
		return strings.Contains(body, want), grep(body, "presence_gateway_connections")
	})
	after := rss(b, p.Cmd.Process.Pid)
	for b.Loop() {
	}
	b.ReportMetric(float64(after-before)/float64(n), "RSS-B/conn")
	b.ReportMetric(float64(after)/(1<<20), "RSS-MiB")
}

// rss reads a process's VmRSS in bytes.
func rss(b *testing.B, pid int) int64 {
	p, err := procfs.NewProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	st, err := p.NewStatus()
	if err != nil {
		b.Fatal(err)
	}
	return int64(st.VmRSS)
}
