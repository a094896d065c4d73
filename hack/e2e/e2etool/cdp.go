package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// A minimal Chrome DevTools Protocol client: just what the browser check
// needs (open a page, evaluate JavaScript in it, take a screenshot, close
// it), over one WebSocket to the browser with flattened sessions.

// chromiumFlags are the headless flags known to work on this machine
// (/work/.library/env/machines/go.md): without the background-networking
// ones Chromium keeps trying to reach Google and is refused.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1100,900",
}

// browser is a Chromium process we started and our DevTools connection to it.
type browser struct {
	cmd     *exec.Cmd
	dataDir string
	conn    *websocket.Conn

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	onEvent func(cdpMessage)
	done    chan struct{}
}

type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// launchChromium starts Chromium headless with a fresh profile and connects
// to it. onEvent receives every protocol event (console messages, ...).
func launchChromium(ctx context.Context, path string, onEvent func(cdpMessage)) (*browser, error) {
	dataDir, err := os.MkdirTemp("", "presencekit-chromium-")
	if err != nil {
		return nil, err
	}
	args := append(append([]string{}, chromiumFlags...), "--user-data-dir="+dataDir, "about:blank")
	cmd := exec.Command(path, args...) //nolint:noctx // stopped by (*browser).close, process group and all
	// Its own process group, so close() can stop the renderers and the
	// zygote with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dataDir)
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	b := &browser{cmd: cmd, dataDir: dataDir, pending: map[int64]chan cdpMessage{}, onEvent: onEvent, done: make(chan struct{})}

	// Chromium prints "DevTools listening on ws://..." once it is ready.
	wsURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "DevTools listening on "); ok {
				select {
				case wsURL <- strings.TrimSpace(rest):
				default:
				}
			}
		}
	}()
	var u string
	select {
	case u = <-wsURL:
	case <-time.After(30 * time.Second):
		b.close()
		return nil, errors.New("chromium did not print its DevTools address within 30s")
	case <-ctx.Done():
		b.close()
		return nil, ctx.Err()
	}
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dialCtx, u, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		b.close()
		return nil, fmt.Errorf("connect to chromium's DevTools at %s: %w", u, err)
	}
	conn.SetReadLimit(64 << 20) // screenshots
	b.conn = conn
	go b.readLoop()
	return b, nil
}

func (b *browser) readLoop() {
	defer close(b.done)
	for {
		_, data, err := b.conn.Read(context.Background())
		if err != nil {
			return
		}
		var m cdpMessage
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		if b.onEvent != nil {
			b.onEvent(m)
		}
	}
}

// call sends one command (to the browser when session is "", else to that
// page's session) and decodes its result into result (if not nil).
func (b *browser) call(ctx context.Context, session, method string, params, result any) error {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}()

	p, err := json.Marshal(params)
	if err != nil {
		return err
	}
	msg, err := json.Marshal(cdpMessage{ID: id, SessionID: session, Method: method, Params: p})
	if err != nil {
		return err
	}
	if err := b.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("devtools %s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("devtools %s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-b.done:
		return fmt.Errorf("devtools %s: connection to chromium closed", method)
	case <-ctx.Done():
		return fmt.Errorf("devtools %s: %w", method, ctx.Err())
	}
}

// close asks Chromium to quit, then stops its whole process group if it
// has not, and removes the profile.
func (b *browser) close() {
	if b.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = b.call(ctx, "", "Browser.close", struct{}{}, nil)
		cancel()
		_ = b.conn.CloseNow()
	}
	exited := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	// Renderers can outlive the main process for a moment.
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	_ = os.RemoveAll(b.dataDir)
}

// page is one tab, attached with its own session.
type page struct {
	b        *browser
	label    string
	targetID string
	session  string
}

func (b *browser) openPage(ctx context.Context, label, url string) (*page, error) {
	var created struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	p := &page{b: b, label: label, targetID: created.TargetID, session: attached.SessionID}
	for _, domain := range []string{"Runtime.enable", "Page.enable", "Log.enable"} {
		if err := b.call(ctx, p.session, domain, struct{}{}, nil); err != nil {
			return nil, err
		}
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.call(ctx, p.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return nil, err
	}
	if nav.ErrorText != "" {
		return nil, fmt.Errorf("%s: navigate to %s: %s", label, url, nav.ErrorText)
	}
	return p, nil
}

// eval evaluates a JavaScript expression in the page and returns its value
// as JSON.
func (p *page) eval(ctx context.Context, expr string) (json.RawMessage, error) {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := p.b.call(ctx, p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
		return nil, err
	}
	if r.ExceptionDetails != nil {
		return nil, fmt.Errorf("%s: %s: %s %s", p.label, expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	return r.Result.Value, nil
}

// waitFor polls expr (which must return a string) until it equals want,
// for at most d. On timeout it says what the page showed last.
func (p *page) waitFor(ctx context.Context, d time.Duration, what, expr, want string) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(d)
	var last string
	for {
		v, err := p.eval(ctx, expr)
		if err == nil {
			var s string
			if json.Unmarshal(v, &s) == nil && s == want {
				return time.Since(start), nil
			}
			last = string(v)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			state, _ := p.eval(ctx, `document.getElementById("conn")?.textContent ?? ""`)
			logText, _ := p.eval(ctx, `[...document.querySelectorAll("#log li")].slice(0, 8).map(li => li.textContent).join(" | ")`)
			return 0, fmt.Errorf("%s: %s: want %q within %s, last saw %s (connection: %s; activity: %s)", p.label, what, want, d, last, state, logText)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s: %s: %w", p.label, what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *page) screenshot(ctx context.Context, file string) error {
	var shot struct {
		Data []byte `json:"data"` // base64 in JSON, decoded by encoding/json
	}
	if err := p.b.call(ctx, p.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, shot.Data, 0o644)
}

func (p *page) close(ctx context.Context) error {
	return p.b.call(ctx, "", "Target.closeTarget", map[string]any{"targetId": p.targetID}, nil)
}
