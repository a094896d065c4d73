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

	"github.com/coder/websocket"
)

// user is the protocol's presence object (docs/protocol.md, "The user object").
type user struct {
	UserID      string `json:"userId"`
	Online      bool   `json:"online"`
	Status      string `json:"status"`
	Text        string `json:"text"`
	Connections int    `json:"connections"`
	Version     int64  `json:"version"`
}

// frame is any server frame, decoded loosely.
type frame struct {
	Type        string          `json:"type"`
	ID          json.RawMessage `json:"id"`
	UserID      string          `json:"userId"`
	HeartbeatMs int             `json:"heartbeatMs"`
	Users       []user          `json:"users"`
	Code        string          `json:"code"`
	Message     string          `json:"message"`
}

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

	watcher, err := dialGateway(ctx, gw[1], watcherID)
	if err != nil {
		return err
	}
	defer watcher.close()
	okf("%s connected to %s (heartbeat %d ms)", watcherID, gw[1], watcher.welcome.HeartbeatMs)
	if err := watcher.send(ctx, map[string]any{"type": "subscribe", "id": 1, "userIds": []string{subject}}); err != nil {
		return err
	}
	snap, err := watcher.expect(ctx, *step, "the subscribe snapshot", func(f frame) bool { return f.Type == "presence" && string(f.ID) == "1" })
	if err != nil {
		return err
	}
	if len(snap.Users) != 1 || snap.Users[0].Online {
		return fmt.Errorf("snapshot of %s before it connected: want one offline user, got %+v", subject, snap.Users)
	}
	okf("snapshot via %s: %s offline", gw[1], subject)

	start := time.Now()
	first, err := dialGateway(ctx, gw[0], subject)
	if err != nil {
		return err
	}
	defer first.close()
	if _, err := watcher.expectUser(ctx, *step, subject, "online", func(u user) bool { return u.Online && u.Status == "online" }); err != nil {
		return err
	}
	okf("%s connected to %s; the watcher on %s saw it online after %s", subject, gw[0], gw[1], since(start))

	start = time.Now()
	if err := first.send(ctx, map[string]any{"type": "status", "id": 2, "status": "away", "text": "e2e lunch"}); err != nil {
		return err
	}
	if _, err := first.expect(ctx, *step, "ok for the status", func(f frame) bool { return f.Type == "ok" && string(f.ID) == "2" }); err != nil {
		return err
	}
	if _, err := watcher.expectUser(ctx, *step, subject, `status away "e2e lunch"`, func(u user) bool { return u.Status == "away" && u.Text == "e2e lunch" }); err != nil {
		return err
	}
	okf("status change crossed the replicas after %s", since(start))

	// A second connection of the same user, on the other replica.
	second, err := dialGateway(ctx, gw[1], subject)
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
		if len(users) != 1 || !users[0].Online || users[0].Connections != 2 || users[0].Status != "away" {
			return fmt.Errorf("GET %s/v1/presence?userId=%s: want online, away, 2 connections; got %+v", base, subject, users)
		}
	}
	okf("GET /v1/presence on both gateways: %s online, away, 2 connections", subject)

	// Closing one connection keeps the user online; closing both is offline.
	if err := first.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		return fmt.Errorf("close %s's first connection: %w", subject, err)
	}
	if _, err := watcher.expectUser(ctx, *step, subject, "1 connection, still online", func(u user) bool { return u.Online && u.Connections == 1 }); err != nil {
		return err
	}
	start = time.Now()
	if err := second.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		return fmt.Errorf("close %s's second connection: %w", subject, err)
	}
	if _, err := watcher.expectUser(ctx, *step, subject, "offline", func(u user) bool { return !u.Online && u.Status == "offline" }); err != nil {
		return err
	}
	okf("%s closed both connections; the watcher saw it offline after %s", subject, since(start))
	return nil
}

// wsClient is one protocol connection with its welcome frame.
type wsClient struct {
	name    string
	conn    *websocket.Conn
	welcome frame
	frames  chan frame
	readErr chan error
}

func dialGateway(ctx context.Context, base, userID string) (*wsClient, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("gateway URL %q: %w", base, err)
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = "/"
	u.RawQuery = url.Values{"userId": {userID}}.Encode()
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dialCtx, u.String(), nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("connect %s as %s: %w", u, userID, err)
	}
	c := &wsClient{name: userID + "@" + u.Host, conn: conn, frames: make(chan frame, 256), readErr: make(chan error, 1)}
	go c.readLoop(ctx)
	w, err := c.expect(ctx, 5*time.Second, "the welcome frame", func(f frame) bool { return f.Type == "welcome" })
	if err != nil {
		_ = conn.CloseNow()
		return nil, err
	}
	if w.UserID != userID || w.HeartbeatMs <= 0 {
		_ = conn.CloseNow()
		return nil, fmt.Errorf("%s: welcome %+v: want userId %q and a heartbeat", c.name, w, userID)
	}
	c.welcome = w
	return c, nil
}

func (c *wsClient) readLoop(ctx context.Context) {
	for {
		typ, data, err := c.conn.Read(ctx)
		if err != nil {
			c.readErr <- err
			close(c.frames)
			return
		}
		if typ != websocket.MessageText || string(data) == "pong" {
			continue
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.readErr <- fmt.Errorf("%s: unparsable frame %q: %w", c.name, data, err)
			close(c.frames)
			return
		}
		c.frames <- f
	}
}

func (c *wsClient) send(ctx context.Context, msg any) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if err := c.conn.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("%s: send %s: %w", c.name, data, err)
	}
	return nil
}

// expect returns the first frame for which match is true, within d. Error
// frames fail at once: the check sends nothing the gateway should refuse.
func (c *wsClient) expect(ctx context.Context, d time.Duration, what string, match func(frame) bool) (frame, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	var seen []string
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return frame{}, fmt.Errorf("%s: connection ended while waiting for %s: %w", c.name, what, <-c.readErr)
			}
			if f.Type == "error" {
				return frame{}, fmt.Errorf("%s: error frame %s: %s while waiting for %s", c.name, f.Code, f.Message, what)
			}
			if match(f) {
				return f, nil
			}
			seen = append(seen, fmt.Sprintf("%s%+v", f.Type, f.Users))
		case <-timer.C:
			return frame{}, fmt.Errorf("%s: no %s within %s (frames seen meanwhile: %v)", c.name, what, d, seen)
		case <-ctx.Done():
			return frame{}, fmt.Errorf("%s: waiting for %s: %w", c.name, what, ctx.Err())
		}
	}
}

// expectUser waits for a presence frame in which userID matches.
func (c *wsClient) expectUser(ctx context.Context, d time.Duration, userID, what string, match func(user) bool) (user, error) {
	var got user
	_, err := c.expect(ctx, d, userID+" "+what, func(f frame) bool {
		if f.Type != "presence" {
			return false
		}
		for _, u := range f.Users {
			if u.UserID == userID && match(u) {
				got = u
				return true
			}
		}
		return false
	})
	return got, err
}

func (c *wsClient) close() { _ = c.conn.CloseNow() }

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
