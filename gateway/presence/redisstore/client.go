package redisstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/gateway/filewatch"
)

// retireAfter is how long a client replaced after a change of the seed
// nodes stays open, so that the commands under way on it finish (every
// command is bounded by a 2 s timeout and a few retries).
const retireAfter = 30 * time.Second

// A client the store no longer hands out, closed once its commands are done.
type retiredClient struct {
	cc      *redis.ClusterClient
	closeAt time.Time
}

// credentialFiles holds the Redis credentials that are read from files
// (mounted Secret keys) and re-read when they change.
type credentialFiles struct {
	username, password string // static (Config.Username, Config.Password)
	usernameFile       *filewatch.File[string]
	passwordFile       *filewatch.File[string]
}

func newCredentialFiles(cfg Config, fo filewatch.Options) (*credentialFiles, error) {
	c := &credentialFiles{username: cfg.Username, password: cfg.Password}
	if cfg.UsernameFile != "" {
		// An optional key of the Secret: no file, no username.
		o := fo
		o.AllowMissing = true
		f, err := filewatch.New("REDIS_USERNAME_FILE", cfg.UsernameFile, func(b []byte) (string, error) {
			return strings.TrimSpace(string(b)), nil
		}, o)
		if err != nil {
			return nil, err
		}
		c.usernameFile = f
	}
	if cfg.PasswordFile != "" {
		f, err := filewatch.New("REDIS_PASSWORD_FILE", cfg.PasswordFile, func(b []byte) (string, error) {
			p := strings.TrimRight(string(b), "\r\n")
			if p == "" {
				return "", errors.New("the file is empty")
			}
			return p, nil
		}, fo)
		if err != nil {
			return nil, err
		}
		c.passwordFile = f
	}
	return c, nil
}

// get returns the credentials of now. It is go-redis's
// CredentialsProviderContext and the subscriber's Credentials, asked at
// every new connection: after a password rotation, connections that are
// open stay authenticated (Redis does not drop them), and each new one
// uses the new password.
func (c *credentialFiles) get(context.Context) (username, password string, err error) {
	username, password = c.username, c.password
	if c.usernameFile != nil {
		username = c.usernameFile.Current()
	}
	if c.passwordFile != nil {
		password = c.passwordFile.Current()
	}
	return username, password, nil
}

// parseSeeds reads REDIS_NODES_FILE: the seed nodes, like REDIS_NODES.
func parseSeeds(b []byte) ([]string, error) {
	nodes, err := config.ParseNodes(string(b))
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, errors.New("the file lists no node")
	}
	return nodes, nil
}

// clusterOptions are the go-redis options of a client bootstrapped from
// seeds; tlsSet is nil without TLS.
func clusterOptions(seeds []string, tlsSet *tlsSettings, creds *credentialFiles) *redis.ClusterOptions {
	o := &redis.ClusterOptions{
		Addrs:                      slices.Clone(seeds),
		CredentialsProviderContext: creds.get,
		// Fail fast while Redis is away: callers (upgrades, the heartbeat)
		// retry on their own schedule, and nothing piles up behind a dead node.
		DialTimeout:           time.Second,
		ReadTimeout:           2 * time.Second,
		WriteTimeout:          2 * time.Second,
		ContextTimeoutEnabled: true,
		MaxRetries:            2,
		MaxRedirects:          4,
		PoolTimeout:           2 * time.Second,
	}
	if tlsSet != nil {
		// Our dialer makes each connection's TLS configuration (the CA file
		// of now); TLSConfig only tells go-redis the connections are TLS.
		o.Dialer = tlsSet.dialer(o.DialTimeout)
		o.TLSConfig = tlsSet.forAddr("")
	}
	return o
}

// client is the cluster client of now (see reseed).
func (s *Store) client() *redis.ClusterClient { return s.cc.Load() }

// reseed follows a change of REDIS_NODES_FILE. go-redis uses its seeds
// (ClusterOptions.Addrs, fixed when the client is made) only to bootstrap,
// and again only when no node of the slot map it learnt answers; so the
// new seeds must be given to a new client, or a later bootstrap (all nodes
// moved) would still use the old ones, and a RedisCluster pointed at
// another cluster would never be followed. The new client must answer
// before it replaces the current one: seeds that do not resolve yet (a
// Service being created) must not take down a client that works. The old
// client stays open for the commands under way on it and is closed later;
// the subscriber follows by itself, since it routes with client() and
// moves every channel whose master changed (shardsub's route check), and
// the heartbeat writes this replica's presence where its lease is not (a
// new cluster). Called by Run's goroutine only.
func (s *Store) reseed(ctx context.Context) {
	s.closeRetired(false)
	if s.seedsFile == nil {
		return
	}
	seeds := s.seedsFile.Current()
	if sameNodes(seeds, s.seeds) {
		return
	}
	if sameNodes(seeds, s.seedsFailed) && time.Since(s.seedsFailedAt) < s.opts.Heartbeat {
		return // retried once per heartbeat
	}
	next := redis.NewClusterClient(clusterOptions(seeds, s.tls, s.creds))
	pctx, cancel := context.WithTimeout(ctx, max(s.opts.Heartbeat, 2*time.Second))
	err := next.Ping(pctx).Err() // loads the slot map from the new seeds
	cancel()
	if err != nil {
		_ = next.Close()
		if !sameNodes(seeds, s.seedsFailed) {
			s.log.Warn("the new Redis seed nodes do not answer; keeping the current client, retrying every heartbeat",
				"nodes", strings.Join(seeds, ","), "err", err)
		}
		s.mu.Lock()
		s.seedsFailed, s.seedsFailedAt = seeds, time.Now()
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	if s.closed { // Close ran meanwhile: it closes the client it finds, not this one
		s.mu.Unlock()
		_ = next.Close()
		return
	}
	previous := s.seeds
	old := s.cc.Swap(next)
	s.seeds, s.seedsFailed = seeds, nil
	s.retired = append(s.retired, retiredClient{cc: old, closeAt: time.Now().Add(retireAfter)})
	s.mu.Unlock()
	s.m.RedisReseedsTotal.Inc()
	s.log.Info("Redis seed nodes changed; now using a client bootstrapped from them",
		"nodes", strings.Join(seeds, ","), "previous", strings.Join(previous, ","))
}

// closeRetired closes the replaced clients that are due (all when all).
func (s *Store) closeRetired(all bool) {
	s.mu.Lock()
	var due []*redis.ClusterClient
	keep := s.retired[:0]
	for _, r := range s.retired {
		if all || time.Now().After(r.closeAt) {
			due = append(due, r.cc)
		} else {
			keep = append(keep, r)
		}
	}
	s.retired = keep
	s.mu.Unlock()
	for _, cc := range due {
		_ = cc.Close()
	}
}

// sameNodes compares two seed lists as sets.
func sameNodes(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
