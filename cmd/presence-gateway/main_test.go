package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presencekit/presence-operator/client"
	"github.com/presencekit/presence-operator/internal/gatewayproc"
	"github.com/presencekit/presence-operator/internal/poll"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gatewayproc.RemoveBinary()
	os.Exit(code)
}

// run starts the gateway binary with env on free ports and waits until
// /healthz answers.
func run(t testing.TB, env ...string) *gatewayproc.Proc {
	t.Helper()
	return gatewayproc.Start(t, gatewayproc.Options{
		Name: "presence-gateway", Env: env, ReadyPath: "/healthz", ReadyWithin: 10 * time.Second,
	})
}

func TestSIGTERMDrain(t *testing.T) {
	const grace = 3 * time.Second
	p := run(t, "SHUTDOWN_GRACE="+grace.String())
	// Raw connections, not the Go client: the test times each close frame
	// and checks its code, and the client would reconnect after it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for i := range 20 {
		c, err := dial(ctx, p.WS+"/?userId=user"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.CloseNow() }()
		if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"welcome"`) {
			t.Fatalf("welcome: %q %v", b, err)
		}
		conns = append(conns, c)
	}
	if got := gatewayproc.Status(p.API + "/readyz"); got != http.StatusOK {
		t.Fatalf("/readyz before SIGTERM: %d", got)
	}
	body := scrape(t, p.Metrics)
	if !strings.Contains(body, "presence_gateway_connections 20") {
		t.Fatalf("/metrics does not show 20 connections:\n%s", grep(body, "presence_gateway_connections"))
	}

	began := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, time.Second, "/readyz 503 after SIGTERM", func() (bool, string) {
		code := gatewayproc.Status(p.API + "/readyz")
		return code == http.StatusServiceUnavailable, fmt.Sprint("HTTP ", code)
	})
	if got := gatewayproc.Status(p.API + "/?userId=late"); got != http.StatusUpgradeRequired && got != http.StatusServiceUnavailable && got != -1 {
		t.Fatalf("plain GET during the drain: %d", got)
	}
	// Each connection is read on its own, to see when its close came.
	closedAt := make([]time.Duration, len(conns))
	codes := make([]websocket.StatusCode, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			_, _, err := c.Read(ctx)
			closedAt[i], codes[i] = time.Since(began), websocket.CloseStatus(err)
		})
	}
	wg.Wait()
	first, last := closedAt[0], closedAt[0]
	for i := range conns {
		if codes[i] != websocket.StatusGoingAway {
			t.Fatalf("connection %d ended with close %d, want 1001", i, codes[i])
		}
		first, last = min(first, closedAt[i]), max(last, closedAt[i])
	}
	select {
	case <-p.Exited:
		if p.ExitErr() != nil {
			t.Fatalf("exit: %v\n%s", p.ExitErr(), p.Log.String())
		}
	case <-time.After(grace):
		t.Fatalf("still running %s after SIGTERM", grace)
	}
	if took := time.Since(began); took >= grace {
		t.Fatalf("exited after %s, not before the %s grace", took, grace)
	}
	// The closes are spread, not all at once (20 closes over 60% of 3s).
	if last-first < 500*time.Millisecond {
		t.Fatalf("closes came between %s and %s after SIGTERM: not spread over the grace", first, last)
	}
	if !strings.Contains(p.Log.String(), "drained") {
		t.Fatalf("no drain in the log:\n%s", p.Log.String())
	}
}

func TestBadConfigExits(t *testing.T) {
	bin, err := gatewayproc.Binary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ env, want string }{
		{"REDIS_NODES=redis-0", `presence-gateway: REDIS_NODES="redis-0": entry "redis-0": missing port`},
		{"PRESENCE_TTL=10s", `presence-gateway: PRESENCE_TTL=10s must be above twice HEARTBEAT_INTERVAL=20s`},
		{"IDLE_TIMEOUT=forever", `presence-gateway: IDLE_TIMEOUT="forever": not a duration`},
		{"IDLE_TIMEOUT=30s", `presence-gateway: IDLE_TIMEOUT=30s must be at least twice HEARTBEAT_INTERVAL=20s`},
		{"AUTH_JWT_AUDIENCE=presence", `presence-gateway: AUTH_JWT_AUDIENCE is set but no JWT key source is`},
	} {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), tc.env)
		var stderr bytes.Buffer
		cmd.Stderr, cmd.Stdout = &stderr, io.Discard
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Fatalf("%s: %v, want exit code 2", tc.env, err)
		}
		out := stderr.String()
		if !strings.HasPrefix(out, tc.want) || strings.Count(out, "\n") != 1 {
			t.Fatalf("%s: stderr %q, want one line starting %q", tc.env, out, tc.want)
		}
	}
}

// TestVersionFlag: --version prints one line and exits 0 without starting
// anything, even with settings that would stop the gateway. The test's
// binary is built without -ldflags, so it carries the defaults; make
// test-images checks the values make images sets.
func TestVersionFlag(t *testing.T) {
	bin, err := gatewayproc.Binary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--version")
	cmd.Env = append(os.Environ(), "REDIS_NODES=redis-0", "WS_PORT=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("--version: %v, stderr %q", err, stderr.String())
	}
	want := "presence-gateway version dev, commit unknown, " + runtime.Version() + " "
	if out := stdout.String(); !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 1 || stderr.Len() != 0 {
		t.Fatalf("--version printed %q (stderr %q), want one line starting %q", out, stderr.String(), want)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	p := run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URL: p.WS, UserID: "m1", DiscardEvents: true, DialAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Subscribe(ctx, "m2"); err != nil {
		t.Fatal(err)
	}
	_ = gatewayproc.Status(p.API + "/?userId=bad%20id")
	body := scrape(t, p.Metrics)
	for _, name := range []string{
		"connections", "connections_total", "messages_received_total", "messages_sent_total",
		"upgrade_rejections_total", "presence_events_published_total", "presence_events_delivered_total",
		"heartbeat_batch_duration_seconds", "online_users_local", "presence_transitions_total",
		"watched_users", "slow_consumer_disconnects_total", "max_connections", "events_coalesced_total",
	} {
		if !strings.Contains(body, "\npresence_gateway_"+name) {
			t.Errorf("/metrics lacks presence_gateway_%s", name)
		}
	}
	// The Redis store's series are registered by the Redis store: a gateway
	// on the embedded store has no Redis to report on.
	for _, name := range []string{"redis_errors_total", "reaped_connections_total", "store_users_held"} {
		if strings.Contains(body, "\npresence_gateway_"+name) {
			t.Errorf("/metrics of a gateway on the memory store has presence_gateway_%s", name)
		}
	}
	if !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Error("/metrics lacks the Go runtime or process collectors")
	}
	if gatewayproc.Status(p.API+"/metrics") != http.StatusNotFound {
		t.Error("/metrics must not be served on the public port")
	}
}

// dial opens a WebSocket connection.
func dial(ctx context.Context, url string) (*websocket.Conn, error) {
	c, resp, err := websocket.Dial(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	return c, err
}

func scrape(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
