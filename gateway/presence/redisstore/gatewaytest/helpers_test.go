package gatewaytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	presenceclient "github.com/presencekit/presence-operator/client"
	"github.com/presencekit/presence-operator/internal/gatewayproc"
	"github.com/presencekit/presence-operator/internal/poll"
	"github.com/presencekit/presence-operator/internal/redistest"
)

// repoRoot is the module root, from this file's path.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
}

// testNodes returns the shared test cluster's seed nodes as REDIS_NODES;
// without one the test skips (fails in CI).
func testNodes(t *testing.T) string {
	t.Helper()
	return strings.Join(redistest.Nodes(t), ",")
}

// Short durations so that expiry and reaping happen within a test.
const (
	ttl = 3 * time.Second
	hb  = time.Second
)

// gw is one gateway process.
type gw struct {
	*gatewayproc.Proc
	name string
}

// startGateway runs the gateway binary on REDIS_NODES=nodes and waits for
// /readyz. At cleanup it sends SIGTERM, so the gateway removes its presence
// and lease and leaves nothing for the next run's gateways to reap (SIGKILL
// after 10s).
func startGateway(t *testing.T, name, nodes string, env ...string) *gw {
	t.Helper()
	p := gatewayproc.Start(t, gatewayproc.Options{
		Name: name,
		Env: append([]string{
			"REDIS_NODES=" + nodes, "PRESENCE_TTL=" + ttl.String(), "HEARTBEAT_INTERVAL=" + hb.String(),
			"SHUTDOWN_GRACE=2s", "IDLE_TIMEOUT=120s",
		}, env...),
		ReadyPath: "/readyz", ReadyWithin: 15 * time.Second, StopGrace: 10 * time.Second,
	})
	return &gw{Proc: p, name: name}
}

// presenceOf reads GET /v1/presence for one user.
func (g *gw) presenceOf(t *testing.T, id string) (map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.API+"/v1/presence?userId="+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/presence: %d", resp.StatusCode)
	}
	var body struct {
		Users []map[string]any `json:"users"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if len(body.Users) != 1 {
		return nil, fmt.Errorf("GET /v1/presence: %d users", len(body.Users))
	}
	return body.Users[0], nil
}

// connect dials the Go client (package client) as userID on g: for the
// users a test connects, changes and disconnects. The watchers, whose
// every event the tests inspect (versions, how many), use dialClient. One
// attempt; the client is closed when the test ends.
func connect(t *testing.T, g *gw, userID string) *presenceclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := presenceclient.Dial(ctx, presenceclient.Options{URL: g.WS, UserID: userID, DiscardEvents: true, DialAttempts: 1})
	if err != nil {
		t.Fatalf("connect to %s as %s: %v", g.name, userID, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// setStatus sets c's status and waits for the gateway's ok.
func setStatus(t *testing.T, c *presenceclient.Client, status presenceclient.Status) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.SetStatus(ctx, status, ""); err != nil {
		t.Fatalf("status %s: %v", status, err)
	}
}

// connectionID is the id of c's open connection ("" when it has none).
func connectionID(c *presenceclient.Client) string {
	w, _ := c.Welcome()
	return w.ConnectionID
}

// stillConnected returns an error unless c answers a ping on the
// connection whose id is connID: the client would hide a drop by
// reconnecting.
func stillConnected(c *presenceclient.Client, connID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		return err
	}
	if id := connectionID(c); id != connID {
		return fmt.Errorf("connection %s, want %s: dropped and reconnected", id, connID)
	}
	return nil
}

// client is one raw WebSocket client; a goroutine reads its frames.
type client struct {
	t      *testing.T
	c      *websocket.Conn
	mu     sync.Mutex
	frames []map[string]any
	texts  []string
	closed chan struct{}
}

func dialClient(t *testing.T, g *gw, userID string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, g.WS+"/?userId="+userID, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s as %s: %v", g.name, userID, err)
	}
	cl := &client{t: t, c: c, closed: make(chan struct{})}
	go cl.readLoop()
	t.Cleanup(func() { _ = c.CloseNow(); <-cl.closed })
	cl.waitFrame("welcome", func(f map[string]any) bool { return f["type"] == "welcome" })
	return cl
}

func (c *client) readLoop() {
	defer close(c.closed)
	for {
		_, b, err := c.c.Read(context.Background())
		if err != nil {
			return
		}
		c.mu.Lock()
		var f map[string]any
		if json.Unmarshal(b, &f) == nil {
			c.frames = append(c.frames, f)
		} else {
			c.texts = append(c.texts, string(b))
		}
		c.mu.Unlock()
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// ping sends the text "ping" and waits for "pong": the connection is alive.
func (c *client) ping() error {
	c.mu.Lock()
	n := len(c.texts)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		return err
	}
	closed := false
	got := poll.Within(5*time.Second, func() bool {
		select {
		case <-c.closed:
			closed = true
			return true
		default:
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.texts) > n
	})
	switch {
	case closed:
		return errors.New("connection closed")
	case !got:
		return errors.New("no pong within 5s")
	}
	return nil
}

func (c *client) waitFrame(what string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	var found map[string]any
	poll.Eventually(c.t, 10*time.Second, "frame: "+what, func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, f := range c.frames {
			if match(f) {
				found = f
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d frames, last %v", len(c.frames), last(c.frames))
	})
	return found
}

func last(fs []map[string]any) any {
	if len(fs) == 0 {
		return nil
	}
	return fs[len(fs)-1]
}

// events returns the pushed presence frames (no id) about userID.
func (c *client) events(userID string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, f := range c.frames {
		if f["type"] != "presence" || f["id"] != nil {
			continue
		}
		us, _ := f["users"].([]any)
		for _, u := range us {
			if m, ok := u.(map[string]any); ok && m["userId"] == userID {
				out = append(out, m)
			}
		}
	}
	return out
}

// subscribe watches ids and waits for the snapshot.
func (c *client) subscribe(ids ...string) {
	c.t.Helper()
	id := fmt.Sprint("sub-", time.Now().UnixNano())
	c.send(map[string]any{"type": "subscribe", "id": id, "userIds": ids})
	c.waitFrame("subscribe snapshot", func(f map[string]any) bool { return f["type"] == "presence" && f["id"] == id })
}

// waitEvent waits for a pushed presence frame about userID matching match.
func (c *client) waitEvent(within time.Duration, userID, what string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	var found map[string]any
	poll.Eventually(c.t, within, "event "+what+" for "+userID, func() (bool, string) {
		evs := c.events(userID)
		for _, e := range evs {
			if match(e) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%v", evs)
	})
	return found
}

func online(u map[string]any) bool { return u["online"] == true }

func conns(u map[string]any) int {
	n, _ := u["connections"].(float64)
	return int(n)
}

func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000)
}

// ownCluster is a cluster of the test's own (on free ports, or at
// PRESENCE_TEST_REDIS_GATEWAY_DISRUPT_BASE_PORT) for the tests that break it. It requires a password, which the gateways read
// from REDIS_PASSWORD_FILE, as the operator configures them.
type ownCluster struct {
	base         int
	nodes        string
	password     string
	passwordFile string
}

func startOwnCluster(t *testing.T) *ownCluster {
	t.Helper()
	testNodes(t)
	base, err := redistest.FreeBase(filepath.Join(repoRoot(), "hack", "redis-cluster.sh"), "PRESENCE_TEST_REDIS_GATEWAY_DISRUPT_BASE_PORT")
	if err != nil {
		t.Fatal(err)
	}
	c := &ownCluster{base: base, password: "gw-test-secret"}
	c.passwordFile = filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(c.passwordFile, []byte(c.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for i := range 6 {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", base+i))
	}
	c.nodes = strings.Join(addrs, ",")
	t.Cleanup(func() { // before up: a failed up leaves nodes to stop
		if out, err := c.run("down"); err != nil {
			t.Errorf("redis-cluster.sh down: %v\n%s", err, out)
		}
	})
	c.mustRun(t, "up")
	return c
}

// replication returns the Replication section of the node's INFO.
func (c *ownCluster) replication(port int) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: c.password})
	defer rc.Close()
	info, err := rc.InfoMap(ctx, "replication").Result()
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	return info["Replication"]
}

func (c *ownCluster) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(repoRoot(), "hack", "redis-cluster.sh")}, args...)...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("REDIS_CLUSTER_BASE_PORT=%d", c.base), "REDIS_CLUSTER_PASSWORD="+c.password)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *ownCluster) mustRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := c.run(args...); err != nil {
		t.Fatalf("redis-cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	gatewayproc.RemoveBinary()
	os.Exit(code)
}

// counter reads one unlabelled counter from the gateway's /metrics.
func (g *gw) counter(t *testing.T, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.Metrics, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s /metrics: %v", g.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %q", name, line)
			}
			return f
		}
	}
	t.Fatalf("%s /metrics has no %s", g.name, name)
	return 0
}
