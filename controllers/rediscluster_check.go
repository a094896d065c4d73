package controllers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// totalSlots is the number of hash slots of a Redis Cluster.
const totalSlots = 16384

// redisCredentials are the ACL credentials from a RedisCluster's Secret.
type redisCredentials struct {
	username, password string
}

// clusterHealth is what checking a Redis Cluster found.
type clusterHealth struct {
	// answered is the seed node whose answers the rest comes from ("" when none answered).
	answered string
	// state is cluster_state (ok, fail).
	state string
	// slotsOK is cluster_slots_ok: slots served by a master that is not failing.
	slotsOK int
	// nodes are the host:port of every master and replica in CLUSTER SHARDS, sorted.
	nodes []string
	// seedErrors has one entry per seed node that did not answer.
	seedErrors map[string]error
	// authFailed is set when a node refused the credentials.
	authFailed bool
}

// checkCluster asks every seed node, concurrently and each under timeout,
// for CLUSTER INFO and CLUSTER SHARDS (the Redis 7 successor of CLUSTER
// SLOTS; the gateway needs Redis 7 anyway), and reports the answers of the first
// seed (in spec order) that gave both.
func checkCluster(ctx context.Context, seeds []string, creds redisCredentials, timeout time.Duration) clusterHealth {
	type answer struct {
		info   string
		shards []redis.ClusterShard
		err    error
	}
	answers := make([]answer, len(seeds))
	var wg sync.WaitGroup
	for i, addr := range seeds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c := redis.NewClient(&redis.Options{
				Addr:            addr,
				Username:        creds.username,
				Password:        creds.password,
				DialTimeout:     timeout,
				ReadTimeout:     timeout,
				WriteTimeout:    timeout,
				MaxRetries:      -1, // one try: the next check comes soon enough
				DialerRetries:   1,
				PoolSize:        1,
				Protocol:        2,
				DisableIdentity: true,
			})
			defer c.Close()
			info, err := c.ClusterInfo(cctx).Result()
			if err != nil {
				answers[i].err = err
				return
			}
			shards, err := c.ClusterShards(cctx).Result()
			answers[i] = answer{info: info, shards: shards, err: err}
		}()
	}
	wg.Wait()

	h := clusterHealth{seedErrors: map[string]error{}}
	for i, a := range answers {
		if a.err != nil {
			h.seedErrors[seeds[i]] = a.err
			if isAuthError(a.err) {
				h.authFailed = true
			}
			continue
		}
		if h.answered != "" {
			continue
		}
		h.answered = seeds[i]
		fields := parseClusterInfo(a.info)
		h.state = fields["cluster_state"]
		h.slotsOK, _ = strconv.Atoi(fields["cluster_slots_ok"])
		h.nodes = shardNodes(a.shards)
	}
	return h
}

// isAuthError says whether err is Redis refusing the credentials.
func isAuthError(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") || strings.HasPrefix(msg, "NOPERM")
}

// parseClusterInfo parses CLUSTER INFO's "key:value" lines.
func parseClusterInfo(info string) map[string]string {
	fields := map[string]string{}
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			fields[k] = v
		}
	}
	return fields
}

// shardNodes lists every node of every shard, masters and replicas, as
// host:port with the endpoint the cluster announces to clients.
func shardNodes(shards []redis.ClusterShard) []string {
	var nodes []string
	for _, s := range shards {
		for _, n := range s.Nodes {
			host := n.Endpoint
			if host == "" || host == "?" {
				host = n.IP
			}
			if host == "" || n.Port == 0 {
				continue
			}
			addr := net.JoinHostPort(host, strconv.FormatInt(n.Port, 10))
			if !slices.Contains(nodes, addr) {
				nodes = append(nodes, addr)
			}
		}
	}
	slices.Sort(nodes)
	return nodes
}

// seedErrorSummary lists the seeds that did not answer and why, in spec order.
func seedErrorSummary(seeds []string, errs map[string]error) string {
	var parts []string
	for _, s := range seeds {
		if err, ok := errs[s]; ok {
			parts = append(parts, fmt.Sprintf("%s: %v", s, err))
		}
	}
	return strings.Join(parts, "; ")
}
