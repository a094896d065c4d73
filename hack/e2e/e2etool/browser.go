package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// checkBrowser opens the /demo page twice in headless Chromium, each on its
// own gateway: the watcher page (first gateway) must see the subject page's
// user (second gateway) come online, change status, and go offline when its
// tab is closed. The page is driven only through its URL and its forms, as a
// person would; the checks read the DOM (data-* attributes of the cards).
func checkBrowser(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("browser", flag.ExitOnError)
	gateways := fs.String("gateways", "", "two gateway base URLs, comma separated: http://127.0.0.1:P1,http://127.0.0.1:P2")
	chromium := fs.String("chromium", "/usr/bin/chromium", "the Chromium binary (Debian's chromium package)")
	screenshot := fs.String("screenshot", "", "write a PNG of the watcher page here at the end")
	timeout := fs.Duration("timeout", 3*time.Minute, "bound on the whole check")
	step := fs.Duration("step", 10*time.Second, "bound on each expected change on a page")
	restartPidfile := fs.String("restart-pidfile", "", "pid file of the first gateway: with -restart-cmd, check that the watcher page reconnects by itself when that gateway restarts")
	restartCmd := fs.String("restart-cmd", "", "shell command that starts the first gateway again (and waits until it is ready)")
	_ = fs.Parse(args)
	gw := strings.Split(*gateways, ",")
	if len(gw) != 2 {
		return fmt.Errorf("-gateways %q: want exactly two URLs", *gateways)
	}
	if _, err := os.Stat(*chromium); err != nil {
		return fmt.Errorf("chromium: %w (hack/e2e/run.sh installs Debian's chromium package)", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	b, err := launchChromium(ctx, *chromium)
	if err != nil {
		return err
	}
	defer b.close()
	okf("chromium started (pid %d)", b.pid())

	suffix := randomSuffix()
	watcherID, subjectID := "page-watcher-"+suffix, "page-subject-"+suffix
	open := func(label, base, userID, watch string) (*page, error) {
		u := strings.TrimRight(base, "/") + "/demo/?" + url.Values{"userId": {userID}, "watch": {watch}, "autoconnect": {"1"}}.Encode()
		p, err := b.openPage(label, u)
		if err != nil {
			return nil, err
		}
		if _, err := p.waitFor(*step, "connection state", `document.getElementById("conn")?.dataset.state ?? ""`, "open"); err != nil {
			return nil, err
		}
		okf("%s: %s connected (%s)", label, userID, u)
		return p, nil
	}
	card := func(userID, attr string) string {
		return fmt.Sprintf(`document.querySelector('#users li[data-user-id=%q]')?.dataset.%s ?? "no card"`, userID, attr)
	}

	watcher, err := open("watcher", gw[0], watcherID, subjectID)
	if err != nil {
		return err
	}
	if _, err := watcher.waitFor(*step, subjectID+" card", card(subjectID, "online"), "false"); err != nil {
		return err
	}
	okf("watcher on %s shows %s offline", gw[0], subjectID)

	subject, err := open("subject", gw[1], subjectID, watcherID)
	if err != nil {
		return err
	}
	took, err := watcher.waitFor(*step, subjectID+" online", card(subjectID, "online"), "true")
	if err != nil {
		return err
	}
	okf("watcher on %s saw %s (on %s) come online (%s after the subject's page connected)", gw[0], subjectID, gw[1], took.Round(time.Millisecond))
	if _, err := subject.waitFor(*step, watcherID+" online", card(watcherID, "online"), "true"); err != nil {
		return err
	}
	okf("subject on %s sees the watcher online too", gw[1])

	// Change the status through the page's own form.
	if _, err := subject.eval(`(() => {
		document.getElementById("status").value = "busy";
		document.getElementById("status-text").value = "in the e2e";
		document.getElementById("status-form").requestSubmit();
		return "";
	})()`); err != nil {
		return err
	}
	took, err = watcher.waitFor(*step, subjectID+" busy", card(subjectID, "status"), "busy")
	if err != nil {
		return err
	}
	detailText, err := watcher.eval(fmt.Sprintf(`document.querySelector('#users li[data-user-id=%q] .detail').textContent`, subjectID))
	if err != nil {
		return err
	}
	if !strings.Contains(detailText, "in the e2e") {
		return fmt.Errorf("watcher: %s card says %q, want the status text \"in the e2e\"", subjectID, detailText)
	}
	okf("watcher saw the status change to busy %q after %s", detailText, took.Round(time.Millisecond))

	// Closing the tab closes its WebSocket: the subject goes offline.
	subject.close()
	took, err = watcher.waitFor(*step, subjectID+" offline", card(subjectID, "online"), "false")
	if err != nil {
		return err
	}
	okf("watcher saw %s go offline %s after its tab closed", subjectID, took.Round(time.Millisecond))

	if *restartPidfile != "" && *restartCmd != "" {
		if _, err := open("subject again", gw[1], subjectID, watcherID); err != nil {
			return err
		}
		if _, err := watcher.waitFor(*step, subjectID+" online again", card(subjectID, "online"), "true"); err != nil {
			return err
		}
		if err := checkReconnect(ctx, watcher, *restartPidfile, *restartCmd, card(subjectID, "online")); err != nil {
			return err
		}
	}

	if *screenshot != "" {
		if err := watcher.screenshot(*screenshot); err != nil {
			return err
		}
		okf("screenshot of the watcher page: %s", *screenshot)
	}
	return nil
}

// checkReconnect stops the watcher's gateway (SIGTERM: it drains, closing the
// page's connection with 1001), checks that the page notices and retries,
// starts the gateway again, and checks that the page reconnects by itself,
// resubscribes and shows the subject online again.
func checkReconnect(ctx context.Context, watcher *page, pidfile, restartCmd, subjectOnline string) error {
	raw, err := os.ReadFile(pidfile)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s: not a pid: %q", pidfile, raw)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop the watcher's gateway (pid %d): %w", pid, err)
	}
	if _, err := watcher.waitFor(30*time.Second, "connection state after its gateway stopped", `document.getElementById("conn")?.dataset.state === "open" ? "open" : "not open"`, "not open"); err != nil {
		return err
	}
	okf("watcher: gateway pid %d stopped (SIGTERM); the page says %q", pid, watcher.evalString(`document.getElementById("conn").textContent`))
	// Wait for the process to be gone so that its port is free again.
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway pid %d still running 30s after SIGTERM", pid)
		}
		time.Sleep(100 * time.Millisecond) // polling a process's exit, bounded above
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", restartCmd)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("restart the gateway (%s): %w", restartCmd, err)
	}
	start := time.Now()
	// The backoff is at most 30 s; after a few failed attempts it is ~4-8 s.
	if _, err := watcher.waitFor(45*time.Second, "reconnection", `document.getElementById("conn")?.dataset.state ?? ""`, "open"); err != nil {
		return err
	}
	if _, err := watcher.waitFor(10*time.Second, "the subject after the resubscription", subjectOnline, "true"); err != nil {
		return err
	}
	okf("watcher reconnected by itself %s after its gateway was back, and shows the subject online again (activity: %s)",
		since(start), watcher.evalString(`[...document.querySelectorAll("#log li")].slice(0, 4).map(li => li.querySelector("time").textContent + " " + li.lastChild.textContent).join(" | ")`))
	return nil
}
