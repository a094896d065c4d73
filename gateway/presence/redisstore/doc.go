// Package redisstore is the Redis Cluster presence.Store: every gateway
// replica shares it, so any replica answers who is online and every replica
// hears every change of the users its clients watch.
//
// # Data model
//
// Per user, all under the hash tag {<userId>} and therefore in one slot
// (keys.go): a ZSET of the user's connections on every replica, member
// "<replica incarnation>|<connection id>", score = expiry in unix ms; a HASH
// with the user's state (online, count, status, text, lastSeen, version,
// offline-grace deadline, and since when it is invisible: while it is,
// watchers were shown it offline, and nothing about it is published); and a
// shard channel. Per replica: a lease
// in the ZSET presence:{replicas} (member = incarnation, score = expiry) and a
// SET presence:{replica:<inc>}:users naming the users it holds connections
// for. All times come from Options.Now.
//
// Reads (Get) pipeline HMGET + ZRANGE per user and count only the
// connections whose score is in the future, so an expired connection is
// never reported, whether or not anything cleaned it up yet.
//
// The heartbeat costs one command per user per interval: ZADD XX GT CH with
// all of the user's local connections, pipelined (the client groups the
// pipeline by node), plus one lease script per replica. The offline grace
// is settled by the same ticker; there is no timer or goroutine per
// connection.
//
// # Why the Lua script is correct
//
// Every change of a user goes through userScript (scripts.go), which runs on
// the user's slot and so executes atomically with respect to every other
// command on that user, whichever replica sent it. It drops expired
// connections, applies one change, recomputes what clients see (online,
// count, status) and compares it with the state last published in the hash.
// Only a difference bumps the version (max(version+1, now ms): monotonic
// even if Redis lost the hash), is written back and is SPUBLISHed on the
// user's shard channel, in the same atomic step. Two replicas racing on one
// user are therefore serialised by Redis: the second script sees the first
// one's published state, so the final state is the one the last operation
// implies and each visible change is published exactly once, with versions
// in the order of the changes. Each replica holds one SSUBSCRIBE per watched
// user (package shardsub), so each change reaches each watching replica once.
// The heartbeat's plain ZADD XX never creates an entry: a connection a
// script removed is not resurrected; a connection Redis lost (failover,
// outage) shows up as a short CH count and is restored through the script,
// which publishes the transition if there is one.
//
// # Why reaping is correct
//
// A replica renews its lease every heartbeat to now+TTL: the same horizon as
// its connections. A lease script that finds the lease absent or already
// lapsed does not renew it: the replica then takes a new incarnation (new
// lease, new index, its connections re-added under new member names by the
// script, which also drops their entries under the old incarnation). The
// old incarnation is never written again, so a survivor removing its
// entries can never remove a live connection: the live ones carry the new
// name. Survivors look for lapsed leases every quarter heartbeat and claim
// one with claimScript, which atomically swaps "<inc>" for "reap:<inc>" with
// a claim expiry only while the lease is still lapsed: of several survivors
// trying at once exactly one wins. The winner walks the index and runs the
// script's "reap" op per user (idempotent; the offline event is published
// by the script, once), then deletes the index and the claim. A winner that
// dies mid-way leaves its claim to lapse and another survivor takes over.
// A replica killed at time T last renewed at or before T, so its lease lapses
// by T+TTL and is reaped within a quarter heartbeat after: within
// PRESENCE_TTL + HEARTBEAT_INTERVAL. Leases are judged on the replicas'
// clocks, so those must agree to well within the heartbeat (NTP does).
//
// # Why an offline grace outlives the replica
//
// With OFFLINE_GRACE, a user's last disconnect leaves it online until the
// deadline written in its hash (gu); the replica that disconnected it
// settles it then (the script's "settle": offline if still no connection
// anywhere, nothing otherwise). A replica that exits (Close, after a drain)
// does not cut those graces short: it removes the connections it still
// holds like a Disconnect (with the grace), leaves the users whose grace
// is pending in its index, and makes its lease lapse at once instead of
// removing it. A survivor then reaps that incarnation like a dead one,
// within a tick; for each reaped user with no live connection and a grace
// ahead, it adopts the grace: the user goes into its own index and its
// local graces, and it settles it at the deadline. A user that reconnected
// anywhere in the meantime has a live connection when the script settles
// it, so it is never announced offline; one that did not is announced once
// (the script compares with the published state). If the adopter exits or
// dies too, its index hands the grace on to the next survivor. With no
// survivor at all the grace is settled by the first replica to start
// (reads are right meanwhile: Get judges the deadline itself).
//
// # Redis trouble
//
// Commands fail fast (1-2 s timeouts) and are retried by their caller's own
// schedule: a failed Disconnect is retried by the heartbeat, and so is the
// removal of a connection whose Connect failed (its script may have run
// though the reply was lost; the upgrade was refused), a failed heartbeat
// by the next one. While no master answers, Ready returns an
// ErrUnavailable (the transport answers /readyz and upgrades with 503) and
// open connections stay open. When Redis answers again, the lease is found
// lapsed or gone, the replica reincarnates and re-writes all its
// connections. Subscriptions lost with their node connection are re-routed
// channel by channel to the slot's current master, and the state of the
// users concerned is re-read and delivered, since changes may have been
// missed.
package redisstore
