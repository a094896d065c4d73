// Package shardsub is a Redis Cluster sharded pub/sub client
// (SSUBSCRIBE/SUNSUBSCRIBE) that keeps working across reconnects,
// failovers and slot migrations: one connection per master node, one
// SSUBSCRIBE per channel, each channel re-routed by itself.
//
// It exists because go-redis v9's ClusterClient.SSubscribe does not do this.
// Its PubSub lives on a single connection chosen by the slot of its first
// channel, so channels of other shards never deliver
// (https://github.com/redis/go-redis/issues/3133); after a reconnect it
// re-subscribes every channel in one SSUBSCRIBE, which Redis rejects with
// CROSSSLOT as soon as two channels hash to different slots, and it sent
// that re-subscription to a node without waiting for Redis to confirm it
// (https://github.com/redis/go-redis/issues/3806). One PubSub per slot would
// cost up to 16384 connections and goroutines per replica. When go-redis
// ships a sharded PubSub that re-subscribes per slot and confirms (see
// https://github.com/redis/go-redis/pull/3717), this package can go.
//
// The client speaks the little of RESP2 it needs itself (resp.go). A
// connection's reader never runs the message handler: it hands each message
// to the connection's inbox, and one goroutine per connection delivers them.
// While the handler keeps up, every message is delivered in order; once a
// backlog builds up (Options.QueueLen), a newer message of a channel
// replaces one not yet delivered (presence is "latest state wins"). A slow
// handler therefore never stalls the reads of a node (replies to
// SSUBSCRIBE, PING, other channels' messages), memory stays bounded, and
// the last message of each channel is always delivered.
package shardsub
