package controllers

import (
	"context"
	"crypto/tls"
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

// redisAccess is how the check reaches the nodes: the ACL credentials of
// spec.auth and the TLS configuration of spec.tls (nil: no TLS).
type redisAccess struct {
	username, password string
	tls                *tls.Config
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
	// masters and replicas count the nodes of CLUSTER SHARDS by role.
	masters, replicas int
	// missingPerms are the gateways' commands the ACL user may not run
	// (probeACL), over every seed that answered, sorted.
	missingPerms []string
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
	// tlsFailed is set when a node's TLS handshake failed.
	tlsFailed bool
}

// checkCluster asks every seed node, concurrently and each under timeout,
// for CLUSTER INFO and CLUSTER SHARDS (the Redis 7 successor of CLUSTER
// SLOTS; the gateway needs Redis 7 anyway), then probes whether the ACL
// user may run the gateways' commands (probeACL), and reports the answers
// of the first seed (in spec order) that gave both, with the permissions
// missing on any seed. The whole check returns within timeout (and a
// little scheduling), however the nodes behave: a node that accepts the
// connection and never answers costs timeout, not more.
func checkCluster(ctx context.Context, seeds []string, access redisAccess, timeout time.Duration) clusterHealth {
	type answer struct {
		info    string
		shards  []redis.ClusterShard
		missing []string
		err     error
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
				Username:        access.username,
				Password:        access.password,
				TLSConfig:       access.tls, // go-redis's dialer verifies each node's host unless ServerName is set
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
				answers[i] = answer{info: info, err: fmt.Errorf("CLUSTER SHARDS: %w", err)}
				return
			}
			missing, err := probeACL(cctx, c)
			if err != nil {
				err = fmt.Errorf("ACL probe: %w", err)
			}
			answers[i] = answer{info: info, shards: shards, missing: missing, err: err}
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
			case isTLSError(a.err):
				h.tlsFailed = true
			}
			continue
		}
		for _, m := range a.missing {
			if !slices.Contains(h.missingPerms, m) {
				h.missingPerms = append(h.missingPerms, m)
			}
		}
		if h.answered != "" {
			continue
		}
		h.answered = seeds[i]
		fields := parseClusterInfo(a.info)
		h.state = fields["cluster_state"]
		h.slotsOK, _ = strconv.Atoi(fields["cluster_slots_ok"])
		h.nodes = shardNodes(a.shards, access.tls != nil)
		h.masters, h.replicas = shardRoles(a.shards)
	}
	slices.Sort(h.missingPerms)
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
// host:port with the endpoint the cluster announces to clients, and the
// TLS port when tlsPorts (or when the node has no other).
func shardNodes(shards []redis.ClusterShard, tlsPorts bool) []string {
	var nodes []string
	for _, s := range shards {
		for _, n := range s.Nodes {
			host := n.Endpoint
			if host == "" || host == "?" {
				host = n.IP
			}
			port := n.Port
			if (tlsPorts && n.TLSPort != 0) || port == 0 {
				port = n.TLSPort // what a TLS client dials; the only port of a TLS-only node
			}
			if host == "" || port == 0 {
				continue
			}
			addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
			if !slices.Contains(nodes, addr) {
				nodes = append(nodes, addr)
			}
		}
	}
	slices.Sort(nodes)
	return nodes
}

// shardRoles counts the nodes of CLUSTER SHARDS by role: one master per
// shard that has one, and every replica.
func shardRoles(shards []redis.ClusterShard) (masters, replicas int) {
	for _, s := range shards {
		for _, n := range s.Nodes {
			switch n.Role {
			case "master":
				masters++
			case "replica", "slave":
				replicas++
			}
		}
	}
	return masters, replicas
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
