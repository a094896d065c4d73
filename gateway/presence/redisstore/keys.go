package redisstore

import (
	"fmt"
	"strings"
)

// Key layout. Everything about one user carries the hash tag {<userId>}, so
// it lives in one slot and one Lua script can touch it all (docs/architecture.md,
// "The Redis data model"):
//
//	presence:{u}:conns   ZSET  "<incarnation>|<connId>" -> expiry (unix ms)
//	presence:{u}:user    HASH  on n st tx ls v gu (see userScript)
//	presence:{u}:events  shard channel (SPUBLISH/SSUBSCRIBE)
//
// Replica bookkeeping, each key in its own slot:
//
//	presence:{replicas}              ZSET incarnation -> lease expiry (unix ms);
//	                                 "reap:<inc>" while a survivor reaps it
//	presence:{replica:<inc>}:users   SET  users this incarnation holds connections for
//
// "presence" is the default namespace (Config.Namespace); tests use their own
// so that a fake clock in one test cannot judge another's leases.
type keyspace string

func (k keyspace) conns(userID string) string   { return string(k) + ":{" + userID + "}:conns" }
func (k keyspace) user(userID string) string    { return string(k) + ":{" + userID + "}:user" }
func (k keyspace) channel(userID string) string { return string(k) + ":{" + userID + "}:events" }
func (k keyspace) replicas() string             { return string(k) + ":{replicas}" }
func (k keyspace) index(inc string) string      { return string(k) + ":{replica:" + inc + "}:users" }

// userFromChannel is the inverse of channel.
func (k keyspace) userFromChannel(ch string) (string, bool) {
	rest, ok := strings.CutPrefix(ch, string(k)+":{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}:events")
}

// checkUserID rejects ids that would break the hash tag. The transport
// validates ids against the protocol's alphabet; this is the store's own
// guard so that a bad id can never spill into another user's slot.
func checkUserID(id string) error {
	if id == "" || len(id) > 256 || strings.ContainsAny(id, "{}\n") {
		return fmt.Errorf("user id %q: must be 1-256 bytes without braces or newlines", id)
	}
	return nil
}
