package demo_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/demo"
	"github.com/presencekit/presence-operator/internal/needs"
)

// newServer mounts the page the way the gateway does.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/demo/", demo.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// noRedirect returns a client that shows redirects instead of following them.
func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// response is what a test looks at of an HTTP answer.
type response struct {
	StatusCode int
	Header     http.Header
}

func get(t *testing.T, c *http.Client, req *http.Request) (response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body of %s: %v", req.URL, err)
	}
	return response{StatusCode: resp.StatusCode, Header: resp.Header}, string(body)
}

func newRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestServesFilesWithTheirContentTypes(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/demo/", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/demo/?userId=alice&watch=bob&autoconnect=1", "text/html; charset=utf-8", `id="users"`},
		{"/demo/index.html", "text/html; charset=utf-8", "<title>presencekit: live presence</title>"},
		{"/demo/app.js", "text/javascript; charset=utf-8", `from "./client.js"`},
		{"/demo/client.js", "text/javascript; charset=utf-8", "export class PresenceClient"},
		{"/demo/style.css", "text/css; charset=utf-8", ".users"},
		{"/demo/favicon.svg", "image/svg+xml", "<svg"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, srv.Client(), newRequest(t, http.MethodGet, srv.URL+tc.path))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", got)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control %q, want no-cache", got)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
		})
	}
}

func TestRedirectsToTheSlashKeepingTheQuery(t *testing.T) {
	srv := newServer(t)
	resp, _ := get(t, noRedirect(), newRequest(t, http.MethodGet, srv.URL+"/demo?userId=alice&autoconnect=1"))
	if resp.StatusCode/100 != 3 {
		t.Fatalf("status %d, want a redirect", resp.StatusCode)
	}
	if got := resp.Header.Get("Location"); got != "/demo/?userId=alice&autoconnect=1" {
		t.Errorf("Location %q, want /demo/?userId=alice&autoconnect=1", got)
	}

	// Mounted without a trailing slash, the handler redirects by itself.
	mux := http.NewServeMux()
	mux.Handle("/demo", demo.Handler())
	bare := httptest.NewServer(mux)
	t.Cleanup(bare.Close)
	resp, _ = get(t, noRedirect(), newRequest(t, http.MethodGet, bare.URL+"/demo?userId=bob"))
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "/demo/?userId=bob" {
		t.Errorf("bare mount: status %d Location %q, want 307 /demo/?userId=bob", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestRefusesWhatItDoesNotServe(t *testing.T) {
	srv := newServer(t)
	resp, _ := get(t, srv.Client(), newRequest(t, http.MethodGet, srv.URL+"/demo/secret.txt"))
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: status %d, want 404", resp.StatusCode)
	}
	resp, _ = get(t, srv.Client(), newRequest(t, http.MethodGet, srv.URL+"/demo/client.test.js"))
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("test file: status %d, want 404 (it is not embedded)", resp.StatusCode)
	}
	resp, _ = get(t, srv.Client(), newRequest(t, http.MethodPost, srv.URL+"/demo/"))
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: status %d Allow %q, want 405 and GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestHeadAndConditionalGet(t *testing.T) {
	srv := newServer(t)
	resp, body := get(t, srv.Client(), newRequest(t, http.MethodHead, srv.URL+"/demo/app.js"))
	if resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("HEAD: status %d, %d body bytes, Content-Type %q", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req := newRequest(t, http.MethodGet, srv.URL+"/demo/app.js")
	req.Header.Set("If-None-Match", etag)
	resp, _ = get(t, srv.Client(), req)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", resp.StatusCode)
	}
}

func TestContentSecurityPolicyAllowsOnlyTheServingGateway(t *testing.T) {
	// A raw Host header, as a client that is not Go's could send it.
	req := httptest.NewRequest(http.MethodGet, "/demo/", nil)
	req.Host = "gw.example:8080; script-src *"
	rec := httptest.NewRecorder()
	demo.Handler().ServeHTTP(rec, req)
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' ws://gw.example:8080script-src wss://gw.example:8080script-src;") {
		t.Errorf("CSP %q: the Host header was not sanitised into one source", csp)
	}
	if strings.Contains(csp, "script-src *") {
		t.Errorf("CSP %q: Host header injected a directive", csp)
	}
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
}

// TestClientScript runs the page's JavaScript unit tests (web/client.test.js:
// backoff, keep-alive, resubscription, version ordering) under Node, which
// every machine of this project has (it is also what npm needs for the e2e
// browser driver).
func TestClientScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		needs.Missing(t, fmt.Sprintf("needs Node.js 20 or later, not found (%v): apt-get install -y nodejs, then `make test-gateway`", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--test", "web/").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test web/: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("node --test web/ did not report \"# fail 0\":\n%s", out)
	}
}
