// Package gatewayproc builds the presence-gateway binary once per test
// binary and runs it as a process on free loopback ports, for the tests that
// need the real process (signals, exit codes, several replicas).
package gatewayproc

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/internal/poll"
)

// buildDir is the temporary directory build made, once it has run.
var buildDir atomic.Value // string

// build compiles cmd/presence-gateway into a temporary directory, once.
var build = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "presence-gateway-test")
	if err != nil {
		return "", err
	}
	buildDir.Store(dir)
	_, file, _, _ := runtime.Caller(0)
	out := filepath.Join(dir, "presence-gateway")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/presence-gateway")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", errors.New(string(b))
	}
	return out, nil
})

// Binary returns the path of the presence-gateway binary, building it on the first call.
func Binary() (string, error) { return build() }

// RemoveBinary deletes the binary Binary built, if it ran; call it from TestMain after m.Run.
func RemoveBinary() {
	if dir, ok := buildDir.Load().(string); ok {
		_ = os.RemoveAll(dir)
	}
}

// portsSpan is how many ports, just below the kernel's ephemeral range,
// FreePort hands out: 32000-32767 with the usual range, above every port
// the Redis clusters of the tests and tools use (hack/redis-cluster.sh
// free-base picks bases up to 21990, their bus ports go up to 31995) and
// the load tool's (18080-19193).
const portsSpan = 768

var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{} // ports FreePort returned in this process
)

// FreePort returns a TCP port that nothing listens on right now, taken
// below the kernel's ephemeral range (net.ipv4.ip_local_port_range) and
// never the same twice in one process. A port of Listen(":0") is one the
// kernel also gives to outgoing connections: under load (a test making
// thousands of connections), one took it before the gateway could bind it.
// Another process may still take a port meanwhile: Start retries then.
func FreePort(t testing.TB) int {
	t.Helper()
	hi := ephemeralLow()
	lo := hi - portsSpan
	for range 10_000 {
		p := lo + rand.IntN(portsSpan)
		if free := takePort(p); free {
			return p
		}
	}
	t.Fatalf("no free port in [%d, %d) after 10,000 tries", lo, hi)
	return 0
}

// takePort records p as handed out if nothing listens on it (bound as the
// gateway binds: all addresses).
func takePort(p int) bool {
	portsMu.Lock()
	defer portsMu.Unlock()
	if handedOut[p] {
		return false
	}
	l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	_ = l.Close()
	handedOut[p] = true
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read, or when it leaves too little room below).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo < 2*portsSpan {
		return 32768
	}
	return lo
}

// LogBuffer holds a process's output; the process writes and the test reads it concurrently.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Options says how Start runs the gateway and when it counts as started.
type Options struct {
	Name        string        // names the process in the log printed when the test fails
	Env         []string      // added after WS_PORT, METRICS_PORT and LOG_FORMAT=text, so it can override them
	ReadyPath   string        // polled on the WebSocket port until it answers 200, e.g. "/healthz"
	ReadyWithin time.Duration // how long the process has to answer ReadyPath
	StopGrace   time.Duration // at cleanup, SIGTERM and this long to exit before SIGKILL; 0 kills at once
}

// Proc is one running gateway process.
type Proc struct {
	Cmd     *exec.Cmd
	Log     *LogBuffer    // its stderr
	WS      string        // ws://127.0.0.1:<port>, the WebSocket endpoint's base
	API     string        // http://127.0.0.1:<port>, the same port's HTTP base
	Metrics string        // the full /metrics URL on the metrics port
	Exited  chan struct{} // closed when the process has ended
	exitErr error
}

// ExitErr is the process's Wait result; read it only once Exited is closed.
func (p *Proc) ExitErr() error { return p.exitErr }

// freePort is FreePort; tests of this package replace it.
var freePort = FreePort

// startAttempts bounds how often Start picks new ports after the process
// failed to bind one.
const startAttempts = 5

// Start runs the gateway binary on free ports and waits until o.ReadyPath
// answers 200; t.Cleanup stops the process and prints its log if t failed.
// A process that exits because another took one of its ports meanwhile
// ("address already in use") is started again on other ports.
func Start(t testing.TB, o Options) *Proc {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("building the gateway: %v", err)
	}
	for attempt := 1; ; attempt++ {
		p := launch(t, bin, o)
		var exited bool
		poll.Eventually(t, o.ReadyWithin, "gateway "+o.Name+" answers "+o.ReadyPath+" 200", func() (bool, string) {
			select {
			case <-p.Exited:
				exited = true
				return true, ""
			default:
			}
			code := Status(p.API + o.ReadyPath)
			return code == http.StatusOK, strconv.Itoa(code)
		})
		if !exited {
			return p
		}
		if attempt < startAttempts && strings.Contains(p.Log.String(), "address already in use") {
			t.Logf("gateway %s: a port was taken before it could bind it; again on other ports", o.Name)
			continue
		}
		t.Fatalf("gateway %s exited before answering %s: %v\n%s", o.Name, o.ReadyPath, p.ExitErr(), p.Log.String())
	}
}

// launch starts one process of the gateway on ports from freePort.
func launch(t testing.TB, bin string, o Options) *Proc {
	t.Helper()
	wsPort, mPort := freePort(t), freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{
		"WS_PORT=" + strconv.Itoa(wsPort), "METRICS_PORT=" + strconv.Itoa(mPort), "LOG_FORMAT=text",
	}, o.Env...)...)
	p := &Proc{Cmd: cmd, Log: &LogBuffer{}, Exited: make(chan struct{}),
		WS: "ws://127.0.0.1:" + strconv.Itoa(wsPort), API: "http://127.0.0.1:" + strconv.Itoa(wsPort),
		Metrics: "http://127.0.0.1:" + strconv.Itoa(mPort) + "/metrics"}
	cmd.Stderr = p.Log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.Exited)
	}()
	t.Cleanup(func() {
		p.stop(o.StopGrace)
		if t.Failed() {
			t.Logf("gateway %s log:\n%s", o.Name, p.Log.String())
		}
	})
	return p
}

// stop ends the process: SIGTERM first when grace > 0, SIGKILL otherwise or after grace.
func (p *Proc) stop(grace time.Duration) {
	if grace > 0 {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Exited:
			return
		case <-time.After(grace):
		}
	}
	_ = p.Cmd.Process.Kill()
	<-p.Exited
}

// Status returns the status code of GET url, or -1 when the request fails (3s timeout).
func Status(url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
