// Package gatewayproc builds the presence-gateway binary once per test
// binary and runs it as a process on free loopback ports, for the tests that
// need the real process (signals, exit codes, several replicas).
package gatewayproc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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

// FreePort returns a TCP port that is free right now on every address, as
// the gateway binds it (WS_PORT and METRICS_PORT listen on ":port"). A port
// free on 127.0.0.1 alone is not enough: a socket on another address (or a
// connection's local port) can hold it, and the gateway then fails to start
// with "address already in use" (seen for about one port in eight on a
// machine busy with other tests).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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

// Start runs the gateway binary on free ports and waits until o.ReadyPath
// answers 200; t.Cleanup stops the process and prints its log if t failed.
func Start(t testing.TB, o Options) *Proc {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("building the gateway: %v", err)
	}
	wsPort, mPort := FreePort(t), FreePort(t)
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
	poll.Eventually(t, o.ReadyWithin, "gateway "+o.Name+" answers "+o.ReadyPath+" 200", func() (bool, string) {
		code := Status(p.API + o.ReadyPath)
		return code == http.StatusOK, strconv.Itoa(code)
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
