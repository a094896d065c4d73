package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/gateway/hub"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/memstore"
	"github.com/presencekit/presence-operator/gateway/server"
)

// benchServer runs a server on the embedded store, with no practical rate
// limit, and returns its ws:// base and the function that stops it.
func benchServer(b *testing.B, edit func(*config.Config)) (string, func()) {
	cfg, err := config.Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	cfg.ShutdownGrace = time.Second
	cfg.MessageRate, cfg.MessageBurst = 1e9, 1<<30
	if edit != nil {
		edit(&cfg)
	}
	reg := prometheus.NewRegistry()
	var h *hub.Hub
	st, err := memstore.New(presence.Options{TTL: cfg.PresenceTTL, Heartbeat: cfg.HeartbeatInterval,
		OnEvent: func(u presence.User) { h.Publish(u) }, Metrics: presence.NewMetrics(reg)})
	if err != nil {
		b.Fatal(err)
	}
	h = hub.New(st, hub.NewMetrics(reg))
	srv, err := server.New(server.Options{Config: cfg, Store: st, Hub: h, Metrics: server.NewMetrics(reg), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	go func() { _ = st.Run(ctx) }()
	return "ws://" + ln.Addr().String(), func() { cancel(); <-done }
}

// cpuNow is the process's CPU time (user and system): the figure that
// matters on a shared machine, where wall time measures the neighbours.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDial opens a raw connection and reads its welcome. The benchmarks
// stay on raw connections, not the Go client: they measure the protocol's
// cost per frame (the text ping, a status write without waiting for its
// answer), which the client's own work would blur.
func benchDial(b *testing.B, url, userID string) *websocket.Conn {
	c, resp, err := websocket.Dial(context.Background(), url+"/?userId="+userID, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := c.Read(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// BenchmarkPingPong: 100 connections each sending the text ping and
// reading its pong, in parallel: the idle benchmark's work (loadgen's
// clients ping every 20 s). cpu-ns/ping is the process's CPU time per ping,
// client side included.
func BenchmarkPingPong(b *testing.B) {
	url, stop := benchServer(b, nil)
	defer stop()
	const conns = 100
	cs := make([]*websocket.Conn, conns)
	for i := range cs {
		cs[i] = benchDial(b, url, fmt.Sprintf("u%d", i))
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNow()
	var wg sync.WaitGroup
	per := b.N/conns + 1
	for _, c := range cs {
		wg.Go(func() {
			for range per {
				if err := c.Write(context.Background(), websocket.MessageText, []byte("ping")); err != nil {
					b.Error(err)
					return
				}
				if _, _, err := c.Read(context.Background()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cpuNow()-cpu0)/float64(per*conns), "cpu-ns/ping")
}

// BenchmarkFanOut: one client changes its status, two watchers of it read
// each event: the latency benchmark's work, on one replica. cpu-ns/change
// is the process's CPU time per status change, clients included.
func BenchmarkFanOut(b *testing.B) {
	url, stop := benchServer(b, nil)
	defer stop()
	actor := benchDial(b, url, "actor")
	go func() {
		for {
			if _, _, err := actor.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	var ws []*websocket.Conn
	got := make(chan struct{}, 1<<20)
	for i := range 2 {
		w := benchDial(b, url, fmt.Sprintf("w%d", i))
		if err := w.Write(context.Background(), websocket.MessageText, []byte(`{"type":"subscribe","id":1,"userIds":["actor"]}`)); err != nil {
			b.Fatal(err)
		}
		if _, _, err := w.Read(context.Background()); err != nil {
			b.Fatal(err)
		}
		ws = append(ws, w)
		go func() {
			for {
				if _, _, err := w.Read(context.Background()); err != nil {
					return
				}
				got <- struct{}{}
			}
		}()
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNow()
	for i := range b.N {
		msg := fmt.Sprintf(`{"type":"status","status":"away","text":"%d"}`, i)
		if err := actor.Write(context.Background(), websocket.MessageText, []byte(msg)); err != nil {
			b.Fatal(err)
		}
		for range len(ws) {
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				b.Fatal("no event")
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N), "cpu-ns/change")
}
