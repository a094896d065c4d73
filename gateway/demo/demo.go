// Package demo is the live presence page the gateway serves at /demo: plain
// HTML, CSS and JavaScript (no build step) embedded in the binary. The page
// connects back to the gateway that served it (ws(s)://<same host>/?userId=),
// watches a few users and shows them come, go and change status in real time.
//
// The page's files live in web/: app.js draws the page. The connection logic
// (reconnect with backoff and jitter, the ping keep-alive, token refresh,
// version ordering) is the JavaScript client, the npm package
// @presencekit/client in clients/js, served as presencekit.js from the bytes
// package clients/js embeds: the page uses the package itself, not a copy.
package demo

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/presencekit/presence-operator/clients/js"
)

//go:embed web/index.html web/style.css web/app.js web/favicon.svg
var files embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// assets maps the last path element of a request to the file it serves; ""
// (a path ending in "/") is the page itself.
var assets = mustLoad(map[string]struct{ file, contentType string }{
	"":            {"web/index.html", "text/html; charset=utf-8"},
	"index.html":  {"web/index.html", "text/html; charset=utf-8"},
	"style.css":   {"web/style.css", "text/css; charset=utf-8"},
	"app.js":      {"web/app.js", "text/javascript; charset=utf-8"},
	"favicon.svg": {"web/favicon.svg", "image/svg+xml"},
}, map[string]asset{
	"presencekit.js": {body: js.Module, contentType: "text/javascript; charset=utf-8"},
})

// mustLoad reads the files of spec from web/ and adds the assets given as
// bytes, computing every ETag.
func mustLoad(spec map[string]struct{ file, contentType string }, given map[string]asset) map[string]asset {
	out := make(map[string]asset, len(spec)+len(given))
	for name, s := range spec {
		body, err := files.ReadFile(s.file)
		if err != nil {
			panic(fmt.Sprintf("demo: embedded file %s: %v", s.file, err)) // a build mistake, caught by the tests
		}
		out[name] = asset{body: body, contentType: s.contentType}
	}
	for name, a := range given {
		out[name] = a
	}
	for name, a := range out {
		sum := sha256.Sum256(a.body)
		a.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
		out[name] = a
	}
	return out
}

// Handler serves the page. It works under any mount point, since it looks
// only at the last element of the path and the page links its files
// relatively: mount it with
//
//	mux.Handle("/demo/", demo.Handler())
//
// (ServeMux then redirects /demo to /demo/, keeping the query string). A path
// that does not end in "/" and names no file is redirected to path + "/", so
// that mounting at "/demo" without the slash works too.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	name := p[strings.LastIndex(p, "/")+1:]
	a, ok := assets[name]
	if !ok {
		if name != "" && !strings.Contains(name, ".") {
			target := p + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
			return
		}
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	// Revalidate every time: the page must match the binary that serves it.
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// The page loads only its own files and talks only to the gateway that
	// served it ('self' covers ws: and wss: only in newer browsers, hence the
	// explicit WebSocket origins).
	h.Set("Content-Security-Policy", fmt.Sprintf(
		"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' ws://%[1]s wss://%[1]s; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		sanitizeHost(r.Host)))
	// ServeContent answers HEAD, If-None-Match (304) and ranges.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}

// sanitizeHost keeps the Host header from injecting CSP directives: only the
// characters of a host name, an IP literal and a port survive.
func sanitizeHost(host string) string {
	var b strings.Builder
	for _, c := range host {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune(".-:[]", c):
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return "localhost"
	}
	return b.String()
}
