package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
)

// The browser check drives Debian's chromium through chromedp: one browser
// process, one tab (in a window of its own, so it is never hidden) per page.

// browser is a headless Chromium that chromedp started. ctx is the context of
// its first tab, which owns the process; the pages are tabs opened beside it.
type browser struct {
	ctx         context.Context
	stopTab     context.CancelFunc
	stopProcess context.CancelFunc
}

// launchChromium starts the Chromium at path, headless, with a fresh profile
// that chromedp removes when it stops the browser. On top of chromedp's
// defaults (headless, no first run, no background networking, no sync, no
// background throttling), the flags are the ones known to work on this
// machine (/work/.library/env/machines/go.md): as root it needs
// --no-sandbox, and without the update and QUIC flags Chromium keeps trying
// to reach Google and is refused.
func launchChromium(ctx context.Context, path string) (*browser, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1100, 900),
	)
	allocCtx, stopProcess := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, stopTab := chromedp.NewContext(allocCtx)
	b := &browser{ctx: tabCtx, stopTab: stopTab, stopProcess: stopProcess}
	// The first action starts the process. It runs on the tab's own context,
	// not one with a shorter timeout: the browser lives as long as the
	// context its first action ran on.
	if err := chromedp.Do(tabCtx); err != nil {
		b.close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	return b, nil
}

// pid is the browser process's id.
func (b *browser) pid() int {
	if c := chromedp.FromContext(b.ctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		return c.Browser.Process().Pid
	}
	return 0
}

// close asks Chromium to quit (for at most 5 s), then stops the process and
// its children and removes the profile (chromedp's allocator does both).
func (b *browser) close() {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	_ = chromedp.Cancel(ctx)
	cancel()
	b.stopTab()
	b.stopProcess()
}

// page is one tab.
type page struct {
	ctx   context.Context
	close context.CancelFunc // closes the tab
	label string
}

// openPage opens url in a new tab and prints the page's console messages and
// uncaught exceptions, labelled, on stderr until the tab is closed.
func (b *browser) openPage(label, url string) (*page, error) {
	ctx, cancel := chromedp.NewContext(b.ctx)
	p := &page{ctx: ctx, label: label}
	p.close = func() { _ = chromedp.Cancel(ctx); cancel() }
	messages := chromedp.Console(ctx) // subscribes now, before the page loads
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			fmt.Fprintf(os.Stderr, "  [%s] %s\n", label, m)
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		p.close()
		return nil, fmt.Errorf("%s: navigate to %s: %w", label, url, err)
	}
	return p, nil
}

// eval evaluates a JavaScript expression that returns a string.
func (p *page) eval(expr string) (string, error) {
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", p.label, expr, err)
	}
	return s, nil
}

// evalString is eval for a log line: the value, or the error.
func (p *page) evalString(expr string) string {
	s, err := p.eval(expr)
	if err != nil {
		return err.Error()
	}
	return s
}

// waitFor waits, for at most d, until expr (which must return a string)
// equals want, checking in the page every 100 ms (chromedp.Poll). It
// returns how long that took; on timeout it says what the page showed last.
func (p *page) waitFor(d time.Duration, what, expr, want string) (time.Duration, error) {
	quoted, err := json.Marshal(want) // a JavaScript string literal
	if err != nil {
		return 0, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(p.ctx, d+5*time.Second) // the poll ends first
	defer cancel()
	_, err = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](
		fmt.Sprintf("(%s) === %s", expr, quoted),
		chromedp.WithPollingInterval(100*time.Millisecond),
		chromedp.WithPollingTimeout(d),
	))
	if err == nil {
		return time.Since(start), nil
	}
	if !errors.Is(err, chromedp.ErrPollingTimeout) {
		return 0, fmt.Errorf("%s: %s: %w", p.label, what, err)
	}
	return 0, fmt.Errorf("%s: %s: want %q within %s, last saw %q (connection: %s; activity: %s)", p.label, what, want, d,
		p.evalString(expr),
		p.evalString(`document.getElementById("conn")?.textContent ?? ""`),
		p.evalString(`[...document.querySelectorAll("#log li")].slice(0, 8).map(li => li.textContent).join(" | ")`))
}

// screenshot writes a PNG of the tab's viewport to file.
func (p *page) screenshot(file string) error {
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return fmt.Errorf("%s: screenshot: %w", p.label, err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, png, 0o644)
}
