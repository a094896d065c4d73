package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/presencekit/presence-operator/gateway/presence"
)

// scriptResult is userScript's reply.
type scriptResult struct {
	ok         bool // a reply was parsed (runUserBatch's per-op outcome)
	user       presence.User
	changed    bool
	to         string
	removed    int
	live       int
	graceUntil int64
}

// userOp is one userScript call, for batches.
type userOp struct {
	userID string
	op     string
	args   []string
}

func (s *Store) scriptArgs(op string, args []string) []any {
	a := make([]any, 0, 4+len(args))
	a = append(a, op, s.nowMs(), s.opts.TTL.Milliseconds(), keyTTL.Milliseconds())
	for _, x := range args {
		a = append(a, x)
	}
	return a
}

func (s *Store) userKeys(userID string) []string {
	return []string{s.keys.conns(userID), s.keys.user(userID), s.keys.channel(userID)}
}

// runUser runs userScript for one user.
func (s *Store) runUser(ctx context.Context, op, userID string, args ...string) (scriptResult, error) {
	v, err := userScript.Run(ctx, s.client(), s.userKeys(userID), s.scriptArgs(op, args)...).Result()
	if err != nil {
		return scriptResult{}, err
	}
	return s.parseResult(userID, v)
}

// runUserBatch runs many userScript calls in one pipeline (the client groups
// it by node and sends each node's part at once). EVALSHA is tried first;
// the client falls back to EVAL when a node does not know the script yet.
// It returns each op's reply (ok false for those that failed) and the
// errors.
func (s *Store) runUserBatch(ctx context.Context, ops []userOp) ([]scriptResult, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	results := make([]scriptResult, len(ops))
	cmds := make([]*redis.Cmd, len(ops))
	run := func(useSHA bool) error {
		_, err := s.client().Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, o := range ops {
				if useSHA {
					cmds[i] = userScript.EvalSha(ctx, p, s.userKeys(o.userID), s.scriptArgs(o.op, o.args)...)
				} else {
					cmds[i] = userScript.Eval(ctx, p, s.userKeys(o.userID), s.scriptArgs(o.op, o.args)...)
				}
			}
			return nil
		})
		return err
	}
	err := run(true)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		err = run(false)
	}
	var errs []error
	for i, c := range cmds {
		if c == nil {
			continue
		}
		v, cerr := c.Result()
		if cerr != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", ops[i].op, ops[i].userID, cerr))
			continue
		}
		res, perr := s.parseResult(ops[i].userID, v)
		if perr != nil {
			errs = append(errs, perr)
			continue
		}
		if ops[i].op == "reap" {
			s.m.ReapedConnectionsTotal.Add(float64(res.removed))
		}
		results[i] = res
	}
	if len(errs) > 0 {
		s.m.RedisErrorsTotal.Add(float64(len(errs)))
		s.client().ReloadState(context.Background())
		return results, errors.Join(errs...)
	}
	return results, err
}

func (s *Store) parseResult(userID string, v any) (scriptResult, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) != 11 {
		return scriptResult{}, fmt.Errorf("presence script for %q: unexpected reply %v", userID, v)
	}
	str := func(i int) string {
		switch x := arr[i].(type) {
		case string:
			return x
		case int64:
			return strconv.FormatInt(x, 10)
		}
		return ""
	}
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	r := scriptResult{
		ok:      true,
		changed: num(6) == 1, to: str(7), removed: int(num(8)), live: int(num(9)), graceUntil: num(10),
	}
	u := presence.User{UserID: userID, Version: num(0), LastSeen: num(5)}
	if str(1) == "1" {
		u.Online = true
		u.Status = presence.Status(str(2))
		u.Text = str(3)
		u.Connections = int(num(4))
		u.LastSeen = s.nowMs()
		if r.live == 0 && r.graceUntil > 0 {
			u.LastSeen = num(5) // within the offline grace: the last disconnect
		}
	} else {
		u.Status = presence.StatusOffline
	}
	r.user = u
	if r.changed {
		s.pm.EventsPublishedTotal.Inc()
		switch r.to {
		case "online", "offline", "status":
			s.pm.TransitionsTotal.WithLabelValues(r.to).Inc()
		}
	}
	return r, nil
}
