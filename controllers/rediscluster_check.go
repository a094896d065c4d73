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

	"github.com/go-logr/logr"
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
	// permissionDenied is set when a node accepted the credentials but
	// their ACL user may not run a command of the check (NOPERM).
	permissionDenied bool
	// tooOld is a seed that answered CLUSTER INFO but not CLUSTER SHARDS
	// (Redis before 7), "" when none.
	tooOld string
}

// checkCluster asks every seed node, concurrently and each under timeout,
// for CLUSTER INFO and CLUSTER SHARDS (the Redis 7 successor of CLUSTER
// SLOTS; the gateway needs Redis 7 anyway), and reports the answers of the first
// seed (in spec order) that gave both. The whole check returns within
// timeout (and a little scheduling), however the nodes behave: a node that
// accepts the connection and never answers costs timeout, not more.
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
			if err != nil {
				err = fmt.Errorf("CLUSTER SHARDS: %w", err)
			}
			answers[i] = answer{info: info, shards: shards, err: err}
		}()
	}
	wg.Wait()

	h := clusterHealth{seedErrors: map[string]error{}}
	for i, a := range answers {
		if a.err != nil {
			h.seedErrors[seeds[i]] = a.err
			switch {
			case isAuthError(a.err):
				h.authFailed = true
			case isPermissionError(a.err):
				h.permissionDenied = true
			case a.info != "" && isUnknownShards(a.err) && h.tooOld == "":
				h.tooOld = seeds[i]
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
	msg, ok := redisErrorMessage(err)
	return ok && (strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH"))
}

// isPermissionError says whether err is Redis refusing a command to an
// authenticated ACL user: the credentials are right, the user's rights are not.
func isPermissionError(err error) bool {
	msg, ok := redisErrorMessage(err)
	return ok && strings.HasPrefix(msg, "NOPERM")
}

// isUnknownShards says whether err is a Redis before 7 refusing CLUSTER
// SHARDS ("ERR Unknown subcommand or wrong number of arguments for 'SHARDS'").
func isUnknownShards(err error) bool {
	msg, ok := redisErrorMessage(err)
	msg = strings.ToLower(msg)
	return ok && strings.Contains(msg, "unknown subcommand") && strings.Contains(msg, "shards")
}

// redisErrorMessage is the message of an error reply from Redis.
func redisErrorMessage(err error) (string, bool) {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return "", false
	}
	return rerr.Error(), true
}

// RedisLogger sends go-redis's internal log lines (one per failed dial of a
// health check, which the RedisCluster status already reports) to log at
// debug level (V(1)). Install it with redis.SetLogger.
type RedisLogger struct{ Log logr.Logger }

// Printf implements go-redis's internal.Logging.
func (l RedisLogger) Printf(_ context.Context, format string, v ...any) {
	l.Log.V(1).Info(fmt.Sprintf(format, v...))
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
