package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/presencekit/presence-operator/client"
)

// Watch two users and print every change of their presence. (The examples
// that need a gateway are compiled, not run: the tests in this package run
// the same calls against a real one.)
func ExampleDial() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Options{
		URL:    "ws://127.0.0.1:8080/",
		UserID: "alice",
		Watch:  []string{"bob", "carol"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for ev := range c.Events() {
		switch ev := ev.(type) {
		case *client.PresenceEvent:
			if ev.User.Online {
				fmt.Printf("%s is %s\n", ev.User.UserID, ev.User.Status)
			} else {
				fmt.Printf("%s is offline, last seen %s\n", ev.User.UserID, time.UnixMilli(ev.User.LastSeen))
			}
		case *client.StateEvent:
			if ev.State == client.StateWaiting {
				fmt.Printf("connection lost (%d %s), retrying in %s\n", ev.Code, ev.Reason, ev.Delay)
			}
		case *client.ErrorEvent:
			fmt.Println("gateway:", ev.Err)
		}
	}
}

// With JWT auth on, the token function is called before each connection and
// before the token expires; the user is the token's sub.
func ExampleOptions_token() {
	fetchToken := func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://app.example.com/presence-token", nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var body struct{ Token string }
		if err := decodeJSON(resp, &body); err != nil {
			return "", err
		}
		return body.Token, nil
	}
	c, err := client.Dial(context.Background(), client.Options{
		URL:           "wss://presence.example.com/",
		Token:         fetchToken,
		DiscardEvents: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	w, _ := c.Welcome()
	fmt.Println("connected as", w.UserID)
}

// Ask once for the presence of users, with a timeout.
func ExampleClient_Query() {
	c, err := client.Dial(context.Background(), client.Options{URL: "ws://127.0.0.1:8080/", UserID: "backend", DiscardEvents: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	users, err := c.Query(ctx, "bob", "carol")
	if errors.Is(err, context.DeadlineExceeded) {
		log.Fatal("the gateway did not answer in time")
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, u := range users {
		fmt.Println(u.UserID, u.Online, u.Status)
	}
}

// Set a status; the client sends it again after every reconnect.
func ExampleClient_SetStatus() {
	c, err := client.Dial(context.Background(), client.Options{URL: "ws://127.0.0.1:8080/", UserID: "alice", DiscardEvents: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.SetStatus(context.Background(), client.StatusAway, "lunch"); err != nil {
		log.Fatal(err)
	}
}

// Subscribe to more users later; a refusal names the ids it refused.
func ExampleClient_Subscribe() {
	c, err := client.Dial(context.Background(), client.Options{URL: "ws://127.0.0.1:8080/", UserID: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	go func() {
		for ev := range c.Events() {
			if p, ok := ev.(*client.PresenceEvent); ok {
				fmt.Println(p.User.UserID, p.User.Status)
			}
		}
	}()
	var refused *client.Error
	if err := c.Subscribe(context.Background(), "dave", "erin"); errors.As(err, &refused) {
		fmt.Printf("not watching %v: %s\n", refused.UserIDs, refused.Code)
	}
	fmt.Println("watching", c.Watchlist())
}

// The reconnect delays: equal jitter, the ceiling doubling up to the cap.
func ExampleBackoffDelay() {
	half := func() float64 { return 0.5 }
	for attempt := range 8 {
		fmt.Print(client.BackoffDelay(attempt, 500*time.Millisecond, 30*time.Second, half), " ")
	}
	fmt.Println()
	// Output: 375ms 750ms 1.5s 3s 6s 12s 22.5s 22.5s
}

func decodeJSON(resp *http.Response, v any) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token endpoint: %s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
