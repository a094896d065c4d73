package redisstore

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// The scripts live in lua/, embedded at build time; the comments on each
// variable below say what its script does and why it is correct.
var (
	//go:embed lua/user.lua
	userLua string
	//go:embed lua/lease.lua
	leaseLua string
	//go:embed lua/claim.lua
	claimLua string
)

// userScript is the only code that changes a user's presence. It runs on the
// user's slot (KEYS are the user's connection ZSET, the user hash and the
// user's shard channel, all tagged {<userId>}), so Redis executes it
// atomically with respect to every other command on that user.
//
// KEYS[1] conns ZSET: member "<replica incarnation>|<connection id>", score =
//
//	expiry (unix ms); a connection is live while score > now.
//
// KEYS[2] user HASH: on (1/0, the state last published), n (connection count
//
//	last published), st, tx (status and text), ls (lastSeen ms), v (version),
//	gu (offline-grace deadline ms, 0 = none), iv (when the user went
//	invisible, ms; 0 = visible). on and n are the user's real state;
//	watchers are shown it only while iv is 0, and an offline user otherwise
//	(see presence.StatusInvisible): an invisible user's real transitions
//	publish nothing, and its lastSeen stays iv.
//
// KEYS[3] shard channel for the user's events.
// ARGV: op, now ms, ttl ms, key ttl ms, then the op's arguments:
//
//	connect <member>          add or refresh one connection, cancel a grace
//	restore <member>...       re-add this replica's connections after Redis
//	                          lost them (failover, outage, lease lapse)
//	disconnect <member> <grace ms>
//	drop <member>...          remove connections at once, no grace (Close)
//	status <status> <text> <member>   (the member must be live;
//	                          "invisible" sets iv and keeps st, tx)
//	settle                    only drop expired connections and publish
//	reap <incarnation prefix> drop every connection of a dead replica
//
// Every op first drops expired connections, applies its change, then compares
// the resulting state (online, visible count, status) with the state last
// published in the hash. Only a difference bumps the version, is written back
// and is published with SPUBLISH, in the same atomic step. Hence each
// transition is published exactly once whoever computes it, and racing
// replicas can only serialise: the later script sees the earlier one's
// published state and publishes nothing when there is nothing new.
//
// The reply (the user as watchers see it, invisible meaning offline):
// {version, online, status, text, count, lastSeen, changed (0/1),
// to ("online"|"offline"|"status"|"count"|""), removed (for reap: only the
// dead replica's), live count (without
// grace), grace deadline ms (0 = none)}.
var userScript = redis.NewScript(userLua)

// leaseScript renews this replica's lease in the replicas ZSET (member =
// incarnation, score = lease expiry ms) and lists lapsed members.
//
// KEYS[1] replicas ZSET. ARGV: incarnation, new expiry ms, now ms.
// A lease that is absent (reaped, or Redis lost its data) or already lapsed
// is NOT renewed: the reply's first element is then 0 and the replica must
// start a new incarnation, because survivors may be removing the old one's
// connections at this very moment (see the package doc).
// Reply: {renewed (0/1), lapsed members (up to 16)}.
var leaseScript = redis.NewScript(leaseLua)

// claimScript lets exactly one survivor reap a lapsed member. It replaces
// the member ("<inc>" or an abandoned "reap:<inc>") by "reap:<inc>" with a
// fresh claim expiry, atomically, only if it is still lapsed. Two survivors
// racing get 1 and 0. If the winner dies mid-way, its claim lapses in turn
// and another survivor takes it over; reaping a user twice is harmless.
//
// KEYS[1] replicas ZSET. ARGV: member, now ms, claim expiry ms.
// Reply: the incarnation to reap, or false.
var claimScript = redis.NewScript(claimLua)
