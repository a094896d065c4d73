package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/presencekit/presence-operator/client"
)

// user is the protocol's presence object (docs/protocol.md, "The user object").
type user = client.User

// checkPresence connects a watcher to the second gateway and a subject to
// the first, and checks that what the subject does on one replica reaches the
// watcher on the other: online, a status change, a second connection, offline.
func checkPresence(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("presence", flag.ExitOnError)
	gateways := fs.String("gateways", "", "two gateway base URLs, comma separated: http://127.0.0.1:P1,http://127.0.0.1:P2")
	timeout := fs.Duration("timeout", 60*time.Second, "bound on the whole check")
	step := fs.Duration("step", 5*time.Second, "bound on each expected event")
	_ = fs.Parse(args)
	gw := strings.Split(*gateways, ",")
	if len(gw) != 2 {
		return fmt.Errorf("-gateways %q: want exactly two URLs", *gateways)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	suffix := randomSuffix()
	subject, watcherID := "e2e-subject-"+suffix, "e2e-watcher-"+suffix

	watcher, err := dialGateway(ctx, gw[1], watcherID, false)
	if err != nil {
		return err
	}
	defer watcher.close()
	okf("%s connected to %s (heartbeat %d ms)", watcherID, gw[1], watcher.welcome.HeartbeatMs)
	subCtx, cancelSub := context.WithTimeout(ctx, *step)
	err = watcher.c.Subscribe(subCtx, subject)
	cancelSub()
	if err != nil {
		return fmt.Errorf("%s: subscribe to %s: %w", watcher.name, subject, err)
	}
	// The snapshot is applied before Subscribe returns.
	if snap, ok := watcher.c.Get(subject); !ok || snap.Online {
		return fmt.Errorf("snapshot of %s before it connected: want an offline user, got %+v (held: %t)", subject, snap, ok)
	}
	okf("snapshot via %s: %s offline", gw[1], subject)

	start := time.Now()
	first, err := dialGateway(ctx, gw[0], subject, true)
	if err != nil {
		return err
	}
	defer first.close()
	if _, err := watcher.expectUser(ctx, *step, subject, "online", func(u user) bool { return u.Online && u.Status == client.StatusOnline }); err != nil {
		return err
	}
	okf("%s connected to %s; the watcher on %s saw it online after %s", subject, gw[0], gw[1], since(start))

	start = time.Now()
	statusCtx, cancelStatus := context.WithTimeout(ctx, *step)
	err = first.c.SetStatus(statusCtx, client.StatusAway, "e2e lunch")
	cancelStatus()
	if err != nil {
		return fmt.Errorf("%s: set status away: %w", first.name, err)
	}
	if _, err := watcher.expectUser(ctx, *step, subject, `status away "e2e lunch"`, func(u user) bool { return u.Status == client.StatusAway && u.Text == "e2e lunch" }); err != nil {
		return err
	}
	okf("status change crossed the replicas after %s", since(start))

	// A second connection of the same user, on the other replica.
	second, err := dialGateway(ctx, gw[1], subject, true)
	if err != nil {
		return err
	}
	defer second.close()
	if _, err := watcher.expectUser(ctx, *step, subject, "2 connections", func(u user) bool { return u.Online && u.Connections == 2 }); err != nil {
		return err
	}
	for _, base := range gw {
		users, err := httpPresence(ctx, base, subject)
		if err != nil {
			return err
		}
		if len(users) != 1 || !users[0].Online || users[0].Connections != 2 || users[0].Status != client.StatusAway {
			return fmt.Errorf("GET %s/v1/presence?userId=%s: want online, away, 2 connections; got %+v", base, subject, users)
		}
	}
	okf("GET /v1/presence on both gateways: %s online, away, 2 connections", subject)

	// Closing one connection keeps the user online; closing both is offline.
	first.close()
	if _, err := watcher.expectUser(ctx, *step, subject, "1 connection, still online", func(u user) bool { return u.Online && u.Connections == 1 }); err != nil {
		return err
	}
	start = time.Now()
	second.close()
	if _, err := watcher.expectUser(ctx, *step, subject, "offline", func(u user) bool { return !u.Online && u.Status == "offline" }); err != nil {
		return err
	}
	okf("%s closed both connections; the watcher saw it offline after %s", subject, since(start))
	return nil
}

// wsClient is one connection of the Go client (package client) with its
// welcome frame.
type wsClient struct {
	name    string
	c       *client.Client
	welcome client.Welcome
}

// dialGateway connects userID to the gateway at base. A subject (quiet)
// discards its events; a watcher's are read by expectUser.
func dialGateway(ctx context.Context, base, userID string, quiet bool) (*wsClient, error) {
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// One attempt: the check fails on a gateway that refuses it, rather
	// than waiting for it with backoff.
	c, err := client.Dial(dialCtx, client.Options{URL: base, UserID: userID, DiscardEvents: quiet, DialAttempts: 1})
	if err != nil {
		return nil, fmt.Errorf("connect %s as %s: %w", base, userID, err)
	}
	w, ok := c.Welcome()
	name := userID + "@" + strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
	if !ok || w.UserID != userID || w.HeartbeatMs <= 0 {
		_ = c.Close()
		return nil, fmt.Errorf("%s: welcome %+v: want userId %q and a heartbeat", name, w, userID)
	}
	return &wsClient{name: name, c: c, welcome: w}, nil
}

// expectUser waits, within d, for a presence event about userID for which
// match is true. Error events fail at once: the check sends nothing the
// gateway should refuse; so does a reconnect, which the check does not
// expect either.
func (c *wsClient) expectUser(ctx context.Context, d time.Duration, userID, what string, match func(user) bool) (user, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	what = userID + " " + what
	var seen []string
	for {
		select {
		case ev, ok := <-c.c.Events():
			if !ok {
				return user{}, fmt.Errorf("%s: the client closed while waiting for %s", c.name, what)
			}
			switch ev := ev.(type) {
			case *client.ErrorEvent:
				return user{}, fmt.Errorf("%s: %w while waiting for %s", c.name, ev.Err, what)
			case *client.StateEvent:
				if ev.State == client.StateWaiting {
					return user{}, fmt.Errorf("%s: connection ended (%d %s) while waiting for %s", c.name, ev.Code, ev.Reason, what)
				}
			case *client.PresenceEvent:
				if ev.User.UserID == userID && match(ev.User) {
					return ev.User, nil
				}
				seen = append(seen, fmt.Sprintf("%+v", ev.User))
			}
		case <-timer.C:
			return user{}, fmt.Errorf("%s: no %s within %s (events seen meanwhile: %v)", c.name, what, d, seen)
		case <-ctx.Done():
			return user{}, fmt.Errorf("%s: waiting for %s: %w", c.name, what, ctx.Err())
		}
	}
}

// close closes the connection (more than once is fine).
func (c *wsClient) close() { _ = c.c.Close() }

func httpPresence(ctx context.Context, base, userID string) ([]user, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u := strings.TrimRight(base, "/") + "/v1/presence?" + url.Values{"userId": {userID}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var body struct {
		Users []user `json:"users"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return body.Users, nil
}

func randomSuffix() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed: " + err.Error()))
	}
	return hex.EncodeToString(b)
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
