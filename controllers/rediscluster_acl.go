package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The gateways' keys and channels, as gateway/presence/redisstore lays
// them out (keys.go) in its default namespace "presence": a user's keys
// carry the hash tag {<userId>}, the replica bookkeeping {replicas} and
// {replica:<incarnation>}. The probe uses a user id no gateway accepts
// (the protocol's ids have no "!"), so it can never name a real user.
const (
	aclProbeUser     = "presencekit!acl-probe"
	aclProbeConns    = "presence:{" + aclProbeUser + "}:conns"
	aclProbeUserHash = "presence:{" + aclProbeUser + "}:user"
	aclProbeChannel  = "presence:{" + aclProbeUser + "}:events"
	aclProbeReplicas = "presence:{replicas}"
	aclProbeIndex    = "presence:{replica:" + aclProbeUser + "}:users"
	// aclProbeSHA is no script's SHA1.
	aclProbeSHA = "0000000000000000000000000000000000000000"
)

// aclProbe is one command the gateways send, in a form whose ACL check
// covers the keys or channel they send it with.
type aclProbe struct {
	// name is the command as a user reads it in the condition.
	name string
	args []any
}

// gatewayCommands are the commands a gateway sends, directly or from its
// Lua scripts (ACLs apply to redis.call too), each on the kind of key or
// channel it uses them with: gateway/presence/redisstore (store.go,
// heartbeat.go, userops.go, lua/*.lua) and its subscriber (shardsub:
// SSUBSCRIBE, SUNSUBSCRIBE, PING), and go-redis's cluster client (CLUSTER
// SLOTS, COMMAND). A test reads the store's sources and fails when a command is
// added there and not here.
var gatewayCommands = []aclProbe{
	{"EVALSHA", []any{"EVALSHA", aclProbeSHA, 3, aclProbeConns, aclProbeUserHash, aclProbeChannel}},
	{"EVAL", []any{"EVAL", "return 0", 3, aclProbeConns, aclProbeUserHash, aclProbeChannel}},
	{"ZADD", []any{"ZADD", aclProbeConns, 0, "m"}},
	{"ZADD", []any{"ZADD", aclProbeReplicas, 0, "m"}},
	{"ZREM", []any{"ZREM", aclProbeConns, "m"}},
	{"ZRANGE", []any{"ZRANGE", aclProbeConns, 0, -1, "WITHSCORES"}},
	{"ZRANGEBYSCORE", []any{"ZRANGEBYSCORE", aclProbeConns, 0, 0}},
	{"ZSCORE", []any{"ZSCORE", aclProbeConns, "m"}},
	{"PEXPIRE", []any{"PEXPIRE", aclProbeConns, 1000}},
	{"DEL", []any{"DEL", aclProbeUserHash}},
	{"HSET", []any{"HSET", aclProbeUserHash, "on", 0}},
	{"HMGET", []any{"HMGET", aclProbeUserHash, "on"}},
	{"SADD", []any{"SADD", aclProbeIndex, "m"}},
	{"SREM", []any{"SREM", aclProbeIndex, "m"}},
	{"SSCAN", []any{"SSCAN", aclProbeIndex, 0}},
	{"SPUBLISH", []any{"SPUBLISH", aclProbeChannel, "x"}},
	{"SSUBSCRIBE", []any{"SSUBSCRIBE", aclProbeChannel}},
	{"SUNSUBSCRIBE", []any{"SUNSUBSCRIBE", aclProbeChannel}},
	{"CLUSTER SLOTS", []any{"CLUSTER", "SLOTS"}},
	{"COMMAND", []any{"COMMAND"}},
	{"PING", []any{"PING"}},
}

// probeACL finds which of gatewayCommands the connection's ACL user may
// not run, in two round trips that change nothing: the commands are queued
// between MULTI and DISCARD. Redis checks a command's ACL (the command, its
// keys, its channels) before it queues it, and answers NOPERM then; a
// permitted command is QUEUED, or refused for another reason (MOVED: its
// slot is elsewhere, which the ACL check precedes). DISCARD drops the queue
// unexecuted. MULTI goes alone first: without it the commands would run.
// So the check needs MULTI and DISCARD, which the gateways themselves do
// not use; a user without them is reported as missing them.
//
// missing lists the commands Redis refused, once each, with the key or
// channel when the refusal is about one; err is set when the probe could not run
// (a broken connection).
func probeACL(ctx context.Context, c *redis.Client) (missing []string, err error) {
	conn := c.Conn()
	defer conn.Close()
	if err := conn.Do(ctx, "MULTI").Err(); err != nil {
		switch {
		case isPermissionError(err):
			return []string{"MULTI (the operator's check queues the gateways' commands in a transaction it discards)"}, nil
		case isRedisReply(err):
			// A Redis that refuses MULTI for another reason (a proxy
			// that disables it): the permissions cannot be probed
			// without running the commands, so they are not.
			return nil, nil
		}
		return nil, fmt.Errorf("MULTI: %w", err)
	}
	cmds := make([]*redis.Cmd, len(gatewayCommands))
	var discard *redis.Cmd
	_, _ = conn.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, probe := range gatewayCommands {
			cmds[i] = p.Do(ctx, probe.args...)
		}
		discard = p.Do(ctx, "DISCARD")
		return nil
	})
	for i, cmd := range cmds {
		err := cmd.Err()
		if !isPermissionError(err) {
			if err != nil && !isRedisReply(err) {
				return nil, fmt.Errorf("%s: %w", gatewayCommands[i].name, err) // the connection broke
			}
			continue
		}
		msg, _ := redisErrorMessage(err)
		name := gatewayCommands[i].name
		switch {
		case strings.Contains(msg, "keys"):
			name += " (key " + probeKey(gatewayCommands[i]) + ")"
		case strings.Contains(msg, "channel"):
			name += " (channel " + aclProbeChannel + ")"
		}
		if !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
	}
	if err := discard.Err(); err != nil {
		if !isPermissionError(err) {
			return missing, fmt.Errorf("DISCARD: %w", err)
		}
		missing = append(missing, "DISCARD (the operator's check queues the gateways' commands in a transaction it discards)")
	}
	return missing, nil
}

// probeKey is the first key a probe names.
func probeKey(p aclProbe) string {
	for _, a := range p.args[1:] {
		if s, ok := a.(string); ok && strings.HasPrefix(s, "presence:") {
			return s
		}
	}
	return ""
}

// isRedisReply says whether err is an error reply from Redis (rather than
// a failed connection).
func isRedisReply(err error) bool {
	_, ok := redisErrorMessage(err)
	return ok
}
