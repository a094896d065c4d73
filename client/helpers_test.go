package client_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
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

// gateway is the real presence-gateway binary (built once by gatewayproc),
// running on the embedded store on a port of its own.
type gateway struct {
	t      *testing.T
	env    []string
	port   int
	cmd    *exec.Cmd
	log    *gatewayproc.LogBuffer
	exited chan struct{}
}

// startGateway runs the gateway with env added to its environment; the
// test's cleanup kills it.
func startGateway(t *testing.T, env ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, env: env}
	t.Cleanup(func() {
		g.kill()
		if t.Failed() && g.log != nil {
			t.Logf("gateway log:\n%s", g.log.String())
		}
	})
	// The port is free when chosen, but another process may take it before
	// the gateway binds it: a new one is chosen then.
	for try := 1; ; try++ {
		err := g.start(freePort(t))
		if err == nil {
			return g
		}
		if try == 10 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

// freePort returns a port that nothing uses on any address (the gateway
// listens on all of them; a port free on 127.0.0.1 may still be in use on
// another loopback address).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (g *gateway) start(port int) error {
	bin, err := gatewayproc.Binary()
	if err != nil {
		g.t.Fatalf("building the gateway: %v", err)
	}
	g.port = port
	g.log = &gatewayproc.LogBuffer{}
	g.exited = make(chan struct{})
	g.cmd = exec.Command(bin)
	metricsPort := freePort(g.t)
	for metricsPort == port { // both chosen free, one after the other: the same port may come twice
		metricsPort = freePort(g.t)
	}
	g.cmd.Env = append(os.Environ(), append([]string{
		"WS_PORT=" + strconv.Itoa(port), "METRICS_PORT=" + strconv.Itoa(metricsPort), "LOG_FORMAT=text", "SHUTDOWN_GRACE=1s",
	}, g.env...)...)
	g.cmd.Stderr = g.log
	if err := g.cmd.Start(); err != nil {
		return err
	}
	exited := g.exited
	go func() {
		_ = g.cmd.Wait()
		close(exited)
	}()
	ready := poll.Within(20*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		return gatewayproc.Status(g.api()+"/healthz") == http.StatusOK
	})
	select {
	case <-exited:
		return fmt.Errorf("the gateway exited before it answered /healthz:\n%s", g.log.String())
	default:
	}
	if !ready {
		return fmt.Errorf("the gateway did not answer /healthz within 20s:\n%s", g.log.String())
	}
	return nil
}

func (g *gateway) url() string { return "ws://127.0.0.1:" + strconv.Itoa(g.port) + "/" }
func (g *gateway) api() string { return "http://127.0.0.1:" + strconv.Itoa(g.port) }

// stop sends SIGTERM (the gateway drains: its connections close with 1001)
// and waits for the exit.
func (g *gateway) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		g.kill()
	}
}

func (g *gateway) kill() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGCONT)
	_ = g.cmd.Process.Kill()
	<-g.exited
}

// freeze stops the gateway process (SIGSTOP) and waits until every one of
// its threads is stopped: the signal is delivered asynchronously.
func (g *gateway) freeze() {
	g.t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		g.t.Fatal(err)
	}
	tasks := fmt.Sprintf("/proc/%d/task", g.cmd.Process.Pid)
	eventually(g.t, 10*time.Second, "every thread of the gateway stopped", func() bool {
		entries, err := os.ReadDir(tasks)
		if err != nil {
			return false
		}
		for _, e := range entries {
			stat, err := os.ReadFile(tasks + "/" + e.Name() + "/stat")
			// The state follows the command's closing parenthesis: "pid (comm) T ...".
			if i := strings.LastIndexByte(string(stat), ')'); err != nil || i < 0 || !strings.HasPrefix(string(stat[i:]), ") T") {
				return false
			}
		}
		return true
	})
}

// thaw resumes a frozen gateway.
func (g *gateway) thaw() { _ = g.cmd.Process.Signal(syscall.SIGCONT) }

// restart stops the gateway and starts a new one, with an empty store, on the same port.
func (g *gateway) restart() {
	g.t.Helper()
	g.stop()
	if err := g.start(g.port); err != nil {
		g.t.Fatal(err)
	}
}

// presence reads users through the HTTP API.
func (g *gateway) presence(ids ...string) []client.User {
	g.t.Helper()
	q := url.Values{"userId": ids}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, g.api()+"/v1/presence?"+q.Encode(), nil)
	if err != nil {
		g.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Users []client.User }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		g.t.Fatal(err)
	}
	return body.Users
}

// dial dials with a bounded context; the client is closed when the test ends.
func dial(t *testing.T, o client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// recorder keeps every event a client delivers.
type recorder struct {
	mu     sync.Mutex
	events []client.Event
	done   chan struct{}
}

func record(t *testing.T, c *client.Client) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range c.Events() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = c.Close()
		<-r.done
	})
	return r
}

// all returns the events of type E so far.
func all[E client.Event](r *recorder) []E {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []E
	for _, ev := range r.events {
		if e, ok := ev.(E); ok {
			out = append(out, e)
		}
	}
	return out
}

// eventually waits up to d for cond.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.Eventually(t, d, what, func() (bool, string) { return cond(), "" })
}

// online reports whether c holds id as online (with status, if not "").
func online(c *client.Client, id string, status client.Status) func() bool {
	return func() bool {
		u, ok := c.Get(id)
		return ok && u.Online && (status == "" || u.Status == status)
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// signHS256 signs claims as an HS256 JWT.
func signHS256(t *testing.T, claims map[string]any, secret string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := enc(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." + enc(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(head))
	return head + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// relay forwards WebSocket connections to a gateway frame by frame, in both
// directions and in order, except that frames to the client for which the
// hold predicate is true are kept back until release. It stands for what the
// protocol allows: a snapshot and an event of the same user reaching the
// client out of order.
type relay struct {
	target string
	srv    *httptest.Server

	mu   sync.Mutex
	hold func(text string) bool
	held []heldFrame
}

type heldFrame struct {
	down *websocket.Conn
	text []byte
}

func startRelay(t *testing.T, target string) *relay {
	r := &relay{target: strings.TrimSuffix(target, "/")}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *relay) url() string { return "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/" }

func (r *relay) serve(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up, resp, err := websocket.Dial(ctx, r.target+req.URL.RequestURI(), nil)
	if resp != nil && resp.Body != nil {
		defer func() { _ = resp.Body.Close() }()
	}
	if err != nil {
		status := http.StatusBadGateway
		if resp != nil {
			status = resp.StatusCode
		}
		http.Error(w, err.Error(), status)
		return
	}
	defer func() { _ = up.CloseNow() }()
	down, err := websocket.Accept(w, req, nil)
	if err != nil {
		return
	}
	defer func() { _ = down.CloseNow() }()
	pipe := func(from, to *websocket.Conn, toClient bool) {
		defer cancel()
		for {
			typ, data, err := from.Read(ctx)
			if err != nil {
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					_ = to.Close(ce.Code, ce.Reason)
				}
				return
			}
			if toClient && r.holds(down, data) {
				continue
			}
			if to.Write(ctx, typ, data) != nil {
				return
			}
		}
	}
	go pipe(down, up, false)
	pipe(up, down, true)
}

func (r *relay) holds(down *websocket.Conn, data []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hold == nil || !r.hold(string(data)) {
		return false
	}
	r.held = append(r.held, heldFrame{down: down, text: data})
	return true
}

// holdNext keeps back the frames to the client for which pred is true.
func (r *relay) holdNext(pred func(string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = pred
}

func (r *relay) heldCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.held)
}

// release stops holding and delivers what was held, in order.
func (r *relay) release(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = nil
	for _, h := range r.held {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := h.down.Write(ctx, websocket.MessageText, h.text)
		cancel()
		if err != nil {
			t.Fatalf("relay: releasing a held frame: %v", err)
		}
	}
	r.held = nil
}
