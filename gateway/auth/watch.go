package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/presencekit/presence-operator/gateway/excerpt"
	"github.com/presencekit/presence-operator/gateway/userid"
)

// MaxWatchEntries bounds the "watch" claim, so that checking a request
// against it stays cheap whatever a token issuer puts in it.
const MaxWatchEntries = 10_000

// WatchList is a token's "watch" claim: the user ids its connection may
// subscribe to and query. An entry is a user id, or a prefix of one ending
// in "*" ("team-42:*"; "*" alone allows everybody). A nil *WatchList (the
// token has no claim) allows everybody.
type WatchList struct {
	ids      map[string]struct{}
	prefixes []string
}

// parseWatch validates the raw "watch" claim: a JSON array of strings, each
// a valid user id or a prefix of one followed by a single final "*".
func parseWatch(raw json.RawMessage) (*WatchList, error) {
	var entries []string
	if err := json.Unmarshal(raw, &entries); err != nil || entries == nil {
		return nil, fmt.Errorf(`"watch" must be an array of strings (user ids, or prefixes ending in "*"), got %s`,
			excerpt.Of(string(raw)))
	}
	if len(entries) > MaxWatchEntries {
		return nil, fmt.Errorf(`"watch" has %d entries; at most %d`, len(entries), MaxWatchEntries)
	}
	w := &WatchList{ids: make(map[string]struct{}, len(entries))}
	for i, e := range entries {
		prefix, isPrefix := strings.CutSuffix(e, "*")
		if strings.Contains(prefix, "*") {
			return nil, fmt.Errorf(`"watch"[%d] %q: "*" may only end an entry (a prefix)`, i, excerpt.Of(e))
		}
		if isPrefix {
			// A prefix is a user id cut short: the same characters, and
			// room for at least one more.
			if prefix != "" {
				if err := userid.Validate(prefix); err != nil || len(prefix) >= userid.MaxLen {
					return nil, fmt.Errorf(`"watch"[%d] %q: the prefix is not the start of a valid user id`, i, excerpt.Of(e))
				}
			}
			w.prefixes = append(w.prefixes, prefix)
			continue
		}
		if err := userid.Validate(e); err != nil {
			return nil, fmt.Errorf(`"watch"[%d]: %w`, i, err)
		}
		w.ids[e] = struct{}{}
	}
	return w, nil
}

// Allows reports whether the list lets its connection watch id.
func (w *WatchList) Allows(id string) bool {
	if w == nil {
		return true
	}
	if _, ok := w.ids[id]; ok {
		return true
	}
	for _, p := range w.prefixes {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// Forbidden returns the ids of userIDs the list does not allow, in order
// (nil when all are allowed).
func (w *WatchList) Forbidden(userIDs []string) []string {
	if w == nil {
		return nil
	}
	var out []string
	for _, id := range userIDs {
		if !w.Allows(id) {
			out = append(out, id)
		}
	}
	return out
}

// errNoWatchClaim refuses a token without "watch" when Options.RequireWatch.
var errNoWatchClaim = errors.New(`invalid token: no "watch" claim, which this gateway requires (AUTH_REQUIRE_WATCH_CLAIM=true): ` +
	`list the user ids the token may watch, e.g. "watch":["bob","team-1:*"]`)
