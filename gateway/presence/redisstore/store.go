package redisstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presencekit/presence-operator/gateway/config"
	"github.com/presencekit/presence-operator/gateway/filewatch"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/redisstore/shardsub"
)

// Config says how to reach the Redis Cluster.
type Config struct {
	// Nodes are seed nodes, "host:port".
	Nodes []string
	// NodesFile, when set, holds the seed nodes instead (a mounted
	// ConfigMap, REDIS_NODES_FILE) and is re-read while the store runs: a
	// change makes a client bootstrapped from the new seeds (see reseed).
	NodesFile string
	// Username and Password are the ACL credentials (both optional).
	Username string
	Password string
	// UsernameFile and PasswordFile, when set, hold them instead (mounted
	// Secret keys; an absent UsernameFile means no username). They are
	// re-read when they change, and each new connection authenticates with
	// what they hold then: a rotated password needs no restart.
	UsernameFile string
	PasswordFile string
	// FileCheckInterval is how often those files are checked for a change,
	// at most (filewatch.DefaultEvery when zero).
	FileCheckInterval time.Duration
	// TLS turns on TLS to every node; TLSCAFile (optional) is a PEM bundle
	// of the CAs to trust instead of the system roots, re-read when it
	// changes (checked like the credential files); TLSServerName, when
	// set, is the name every node's certificate is verified against
	// instead of the host dialled; TLSInsecureSkipVerify accepts any
	// certificate (tests only).
	TLS                   bool
	TLSCAFile             string
	TLSServerName         string
	TLSInsecureSkipVerify bool
	// Namespace prefixes every key and channel ("presence" when empty).
	// Replicas that share presence must use the same one.
	Namespace string
	// ReplicaName prefixes this replica's lease name (e.g. the pod name),
	// for people reading Redis; a random suffix makes it unique.
	ReplicaName string
	// Metrics receives the Redis store's own series (NewMetrics); the
	// series every store writes go to presence.Options.Metrics. Required.
	Metrics *Metrics
}

// keyTTL bounds how long a user's keys outlive their last write: long enough
// that an offline user's lastSeen and version are kept for days, short
// enough that Redis does not grow forever. Connections keep their key alive
// through the heartbeat (see refresh).
const keyTTL = 7 * 24 * time.Hour

// keyRenewEvery is how often the heartbeat renews the key TTL of a user's
// connection ZSET (PEXPIRE), spreading that cost thinly.
const keyRenewEvery = 24 * time.Hour

// Store is the Redis Cluster presence.Store. See the package doc.
type Store struct {
	cfg  Config
	opts presence.Options
	m    *Metrics          // the Redis store's series
	pm   *presence.Metrics // the series every store writes
	log  *slog.Logger
	now  func() time.Time
	cc   atomic.Pointer[redis.ClusterClient] // see client() and reseed
	sub  *shardsub.Client

	tls       *tlsSettings // nil: no TLS
	creds     *credentialFiles
	seedsFile *filewatch.File[[]string] // nil: the seeds are Config.Nodes
	// Written by Run's goroutine (and New) under mu:
	seeds         []string // what the current client was bootstrapped from
	seedsFailed   []string // new seeds that did not answer
	seedsFailedAt time.Time
	seed          maphash.Seed
	keys          keyspace

	inc     atomic.Pointer[string] // current incarnation (lease member)
	stripes [64]sync.Mutex         // serialise Redis writes per user on this replica

	mu      sync.Mutex
	users   map[string]*localUser // users with connections (or a pending grace) here
	graces  map[string]struct{}   // users whose offline grace is pending here
	retries map[presence.Conn]struct{}
	retired []retiredClient // clients replaced by reseed, closed when due
	closed  bool

	leaseFailing bool // Run's goroutine only: log the first failure, not each

	lastOK   atomic.Int64 // unix ns of the last background Redis success
	lastFail atomic.Int64 // unix ns of the last Redis failure

	// The heartbeat's outcome, for Ready: beatAt is Options.Now's unix ms
	// of the last heartbeat that renewed (or re-took) the lease and wrote
	// every local connection (0 until Run starts; Run's start counts as
	// one); beatErr is the last heartbeat's write error (nil when it wrote
	// everything).
	beatAt  atomic.Int64
	beatErr atomic.Pointer[error]

	readyMu  sync.Mutex
	readyAt  time.Time
	readyErr error
}

// localUser is what this replica holds for one user.
type localUser struct {
	conns      map[string]struct{} // connection ids
	graceUntil time.Time           // offline grace pending, settle after it
	keyRenewAt time.Time
}

var _ presence.Store = (*Store)(nil)

// New connects to the cluster (lazily: a cluster that is down now makes
// Ready fail, not New) and registers this replica's lease.
func New(cfg Config, opts presence.Options) (*Store, error) {
	if opts.OnEvent == nil {
		return nil, errors.New("redisstore: Options.OnEvent is required")
	}
	if opts.Metrics == nil || cfg.Metrics == nil {
		return nil, errors.New("redisstore: Options.Metrics and Config.Metrics are required")
	}
	if opts.TTL <= 0 || opts.Heartbeat <= 0 || opts.TTL < 2*opts.Heartbeat {
		return nil, fmt.Errorf("redisstore: TTL (%s) must be positive and at least twice the heartbeat (%s)", opts.TTL, opts.Heartbeat)
	}
	if strings.ContainsAny(cfg.Namespace, "{}") {
		return nil, fmt.Errorf("redisstore: namespace %q: must not contain braces (they are the hash tags)", cfg.Namespace)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "redisstore")
	fo := filewatch.Options{Every: cfg.FileCheckInterval, Logger: log}
	nodes := cfg.Nodes
	var seedsFile *filewatch.File[[]string]
	if cfg.NodesFile != "" {
		f, err := filewatch.New("REDIS_NODES_FILE", cfg.NodesFile, parseSeeds, fo)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
		seedsFile, nodes = f, f.Current()
	}
	if len(nodes) == 0 {
		return nil, errors.New("redisstore: REDIS_NODES is empty")
	}
	for _, n := range nodes {
		if err := config.ValidateRedisNode(n); err != nil {
			return nil, fmt.Errorf("redisstore: REDIS_NODES entry %q: %w", n, err)
		}
	}
	creds, err := newCredentialFiles(cfg, fo)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	tlsSet, err := newTLSSettings(cfg, fo)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	cc := redis.NewClusterClient(clusterOptions(nodes, tlsSet, creds))
	s := &Store{
		cfg: cfg, opts: opts, m: cfg.Metrics, pm: opts.Metrics, log: log, now: now,
		tls: tlsSet, creds: creds, seedsFile: seedsFile, seeds: nodes,
		seed:    maphash.MakeSeed(),
		keys:    keyspace(cmp.Or(cfg.Namespace, "presence")),
		users:   map[string]*localUser{},
		graces:  map[string]struct{}{},
		retries: map[presence.Conn]struct{}{},
	}
	sub, err := shardsub.New(shardsub.Options{
		Router: shardsub.ClusterRouter{Client: s.client}, TLS: s.tlsFor(),
		Credentials: creds.get, Logger: s.log,
		OnMessage: s.onMessage, OnResync: s.onResync,
		OnCoalesced: func(n int) { s.m.EventsCoalescedTotal.Add(float64(n)) },
	})
	if err != nil {
		return nil, err
	}
	s.cc.Store(cc)
	s.sub = sub
	inc := newIncarnation(cfg.ReplicaName)
	s.inc.Store(&inc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// Best effort: if Redis is down, the first heartbeat finds no lease and
	// starts a new incarnation, which registers it.
	if err := cc.ZAdd(ctx, s.keys.replicas(), redis.Z{Score: float64(s.leaseExpiry()), Member: inc}).Err(); err != nil {
		s.log.Warn("redis unreachable at start; presence will be written when it answers", "err", err)
	}
	return s, nil
}

func newIncarnation(name string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	// "|" separates the incarnation from the connection id in members, and
	// braces would change the index key's hash tag.
	name = strings.Map(func(r rune) rune {
		if r == '|' || r == '{' || r == '}' || r < ' ' {
			return '-'
		}
		return r
	}, name)
	if name == "" {
		name = "gw"
	}
	return name + "-" + hex.EncodeToString(b)
}

func (s *Store) incarnation() string { return *s.inc.Load() }

func member(inc, connID string) string { return inc + "|" + connID }

func (s *Store) nowMs() int64 { return s.now().UnixMilli() }

func (s *Store) leaseExpiry() int64 { return s.nowMs() + s.opts.TTL.Milliseconds() }

func (s *Store) stripe(userID string) *sync.Mutex { return &s.stripes[s.indexOfStripe(userID)] }

// lockUser checks the id, refuses a closed store, and takes the user's
// stripe lock, which orders this replica's writes of one user; the caller
// calls unlock when done.
func (s *Store) lockUser(userID string) (unlock func(), err error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	mu := s.stripe(userID)
	mu.Lock()
	return mu.Unlock, nil
}

func (s *Store) indexOfStripe(userID string) int {
	return int(maphash.String(s.seed, userID) % uint64(len(s.stripes)))
}

// redisTrouble counts a failed command and asks the client to reload the
// slot map: go-redis reloads it by itself on MOVED, but not when a master
// stopped answering, and its replica's promotion must be learnt quickly.
// The reload is lazy and coalesced (one at a time, 200 ms apart).
func (s *Store) redisTrouble() {
	s.lastFail.Store(time.Now().UnixNano())
	s.m.RedisErrorsTotal.Inc()
	s.client().ReloadState(context.Background())
}

// unavailable wraps a Redis failure so the transport can tell it apart.
func (s *Store) unavailable(what string, err error) error {
	s.redisTrouble()
	return fmt.Errorf("%w: %s: %w", presence.ErrUnavailable, what, err)
}

func (s *Store) observe(command string, start time.Time) {
	s.m.RedisCommandDuration.WithLabelValues(command).Observe(time.Since(start).Seconds())
}

var errClosed = errors.New("redisstore: store is closed")

func (s *Store) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	return nil
}

// Connect records an open connection: first in this incarnation's index
// (so a reaper can find it should this replica die), then in the user's
// keys by the script.
func (s *Store) Connect(ctx context.Context, c presence.Conn) (presence.User, error) {
	unlock, err := s.lockUser(c.UserID)
	if err != nil {
		return presence.User{}, err
	}
	defer unlock()
	inc := s.incarnation()
	start := time.Now()
	if err := s.client().SAdd(ctx, s.keys.index(inc), c.UserID).Err(); err != nil {
		return presence.User{}, s.unavailable("connect "+c.UserID, err)
	}
	res, err := s.runUser(ctx, "connect", c.UserID, member(inc, c.ID))
	s.observe("connect", start)
	if err != nil {
		// The script may have run although its reply was lost (a timeout,
		// a cancelled request): the connection, which the caller drops,
		// would then stay online until it expired, and nothing would
		// publish its offline. Remove it like a failed Disconnect.
		s.mu.Lock()
		if len(s.retries) < 1_000_000 {
			s.retries[c] = struct{}{}
		}
		s.mu.Unlock()
		return presence.User{}, s.unavailable("connect "+c.UserID, err)
	}
	s.mu.Lock()
	lu := s.users[c.UserID]
	if lu == nil {
		lu = &localUser{conns: map[string]struct{}{}, keyRenewAt: time.Now().Add(keyRenewEvery)}
		s.users[c.UserID] = lu
	}
	lu.conns[c.ID] = struct{}{}
	lu.graceUntil = time.Time{}
	delete(s.graces, c.UserID)
	s.m.UsersHeld.Set(float64(len(s.users)))
	s.mu.Unlock()
	return res.user, nil
}

// Disconnect removes a connection. With an offline grace, the last
// connection's removal leaves the user online until the grace ends; Run
// settles it then (or a reaper does, should this replica die meanwhile).
func (s *Store) Disconnect(ctx context.Context, c presence.Conn) (presence.User, error) {
	unlock, err := s.lockUser(c.UserID)
	if err != nil {
		return presence.User{}, err
	}
	defer unlock()
	s.mu.Lock()
	lu := s.users[c.UserID]
	if lu != nil {
		delete(lu.conns, c.ID)
	}
	s.mu.Unlock()
	start := time.Now()
	res, err := s.runUser(ctx, "disconnect", c.UserID, member(s.incarnation(), c.ID),
		strconv.FormatInt(s.opts.OfflineGrace.Milliseconds(), 10))
	s.observe("disconnect", start)
	if err != nil {
		// Retried by the heartbeat, so the connection cannot linger as a
		// ghost while this replica lives.
		s.mu.Lock()
		if len(s.retries) < 1_000_000 {
			s.retries[c] = struct{}{}
		}
		s.mu.Unlock()
		return presence.User{}, s.unavailable("disconnect "+c.UserID, err)
	}
	s.afterRemoval(ctx, c.UserID, res)
	return res.user, nil
}

// afterRemoval forgets a user without local connections, or keeps it until
// its offline grace ends. Called with the user's stripe held.
func (s *Store) afterRemoval(ctx context.Context, userID string, res scriptResult) {
	s.mu.Lock()
	lu := s.users[userID]
	if lu != nil && len(lu.conns) > 0 {
		s.mu.Unlock()
		return
	}
	if res.graceUntil > 0 {
		if lu == nil {
			lu = &localUser{conns: map[string]struct{}{}}
			s.users[userID] = lu
		}
		lu.graceUntil = time.UnixMilli(res.graceUntil)
		s.graces[userID] = struct{}{}
		s.mu.Unlock()
		return
	}
	delete(s.users, userID)
	delete(s.graces, userID)
	s.m.UsersHeld.Set(float64(len(s.users)))
	s.mu.Unlock()
	// Nothing of this user is left here: take it out of the index. Should
	// this fail, a reaper merely settles a user with nothing to remove.
	if err := s.client().SRem(ctx, s.keys.index(s.incarnation()), userID).Err(); err != nil {
		s.redisTrouble()
	}
}

// SetStatus sets the user's status and text.
func (s *Store) SetStatus(ctx context.Context, c presence.Conn, status presence.Status, text string) (presence.User, error) {
	if !status.Settable() {
		return presence.User{}, fmt.Errorf("status %q cannot be set (want online, away, busy or invisible)", status)
	}
	unlock, err := s.lockUser(c.UserID)
	if err != nil {
		return presence.User{}, err
	}
	defer unlock()
	start := time.Now()
	res, err := s.runUser(ctx, "status", c.UserID, string(status), text, member(s.incarnation(), c.ID))
	s.observe("status", start)
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOCONN") {
			return presence.User{}, fmt.Errorf("connection %q of user %q is not connected", c.ID, c.UserID)
		}
		return presence.User{}, s.unavailable("status "+c.UserID, err)
	}
	return res.user, nil
}

// Get reads the users with one pipeline (two commands per user, grouped by
// node by the client), computing liveness from the connection scores, so
// that an expired connection is never reported even before any cleanup.
func (s *Store) Get(ctx context.Context, userIDs []string) ([]presence.User, error) {
	for _, id := range userIDs {
		if err := checkUserID(id); err != nil {
			return nil, err
		}
	}
	if len(userIDs) == 0 {
		return []presence.User{}, nil
	}
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	start := time.Now()
	hs := make([]*redis.SliceCmd, len(userIDs))
	zs := make([]*redis.ZSliceCmd, len(userIDs))
	_, err := s.client().Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range userIDs {
			hs[i] = p.HMGet(ctx, s.keys.user(id), "on", "n", "st", "tx", "ls", "v", "gu", "iv")
			zs[i] = p.ZRangeWithScores(ctx, s.keys.conns(id), 0, -1)
		}
		return nil
	})
	s.observe("get", start)
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.unavailable("get", err)
	}
	now := s.nowMs()
	out := make([]presence.User, len(userIDs))
	for i, id := range userIDs {
		out[i] = s.view(id, hs[i].Val(), zs[i].Val(), now)
	}
	return out, nil
}

// view computes a user as a read sees it at now (the same rules as the
// script, without writing).
func (s *Store) view(id string, h []any, zs []redis.Z, now int64) presence.User {
	str := func(i int) string {
		if i < len(h) {
			if v, ok := h[i].(string); ok {
				return v
			}
		}
		return ""
	}
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	pubN, ls, v, gu, iv := num(1), num(4), num(5), num(6), num(7)
	if iv > 0 {
		// Invisible (or was, until its connections expired just now): it
		// shows offline since it hid, and the script's hash says when.
		return presence.User{UserID: id, Status: presence.StatusOffline, LastSeen: ls, Version: v}
	}
	ttl := s.opts.TTL.Milliseconds()
	live := 0
	for _, z := range zs {
		sc := int64(z.Score)
		if sc > now {
			live++
		} else if last := min(sc-ttl, now); last > ls {
			ls = last // expired but not yet cleaned: last refresh
		}
	}
	u := presence.User{UserID: id, Version: v}
	grace := live == 0 && gu > now
	if live > 0 || grace {
		u.Online = true
		u.Status = presence.Status(str(2))
		if u.Status == "" {
			u.Status = presence.StatusOnline
		}
		u.Text = str(3)
		u.Connections = live
		u.LastSeen = now
		if grace {
			u.Connections = int(pubN)
			u.LastSeen = ls // the last disconnect, as after the grace
		}
		return u
	}
	u.Status = presence.StatusOffline
	u.LastSeen = ls
	return u
}

// Watch subscribes this replica to the user's shard channel (once).
func (s *Store) Watch(ctx context.Context, userID string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if err := s.checkOpen(); err != nil {
		return err
	}
	start := time.Now()
	err := s.sub.Subscribe(ctx, s.keys.channel(userID))
	s.observe("ssubscribe", start)
	s.pm.WatchedUsers.Set(float64(s.sub.Count()))
	if err != nil {
		return s.unavailable("watch "+userID, err)
	}
	return nil
}

// Unwatch drops the subscription.
func (s *Store) Unwatch(ctx context.Context, userID string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	err := s.sub.Unsubscribe(ctx, s.keys.channel(userID))
	s.pm.WatchedUsers.Set(float64(s.sub.Count()))
	if err != nil {
		return s.unavailable("unwatch "+userID, err)
	}
	return nil
}

// onMessage decodes an event published by userScript and hands it on.
func (s *Store) onMessage(ch, payload string) {
	id, ok := s.keys.userFromChannel(ch)
	if !ok {
		return
	}
	f := strings.SplitN(payload, "\n", 6)
	if len(f) != 6 {
		s.log.Warn("malformed presence event", "channel", ch)
		return
	}
	v, _ := strconv.ParseInt(f[0], 10, 64)
	n, _ := strconv.Atoi(f[3])
	ls, _ := strconv.ParseInt(f[4], 10, 64)
	s.opts.OnEvent(presence.User{
		UserID: id, Online: f[1] == "1", Status: presence.Status(f[2]), Text: f[5],
		Connections: n, LastSeen: ls, Version: v,
	})
}

// onResync delivers the current state of users whose subscription was lost
// and restored: their changes in between were not received. An error means
// "try again later" (the subscriber keeps the list).
func (s *Store) onResync(channels []string) error {
	ids := make([]string, 0, len(channels))
	for _, ch := range channels {
		if id, ok := s.keys.userFromChannel(ch); ok {
			ids = append(ids, id)
		}
	}
	var all []presence.User
	for len(ids) > 0 {
		batch := ids[:min(len(ids), 500)]
		ids = ids[len(batch):]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		us, err := s.Get(ctx, batch)
		cancel()
		if err != nil {
			return err
		}
		all = append(all, us...)
	}
	for _, u := range all {
		s.opts.OnEvent(u)
	}
	return nil
}

// Ready reports whether Redis answers. The transport asks every second
// (and on /readyz), so it must not cost Redis work per call: the Run loop
// talks to Redis every quarter heartbeat anyway, and a success of it newer
// than any failure, within readyFresh, is the answer. Otherwise (no Run,
// a recent failure, or a stale success) one PING to the master holding the
// lease table decides, cached for half a second.
//
// Whatever Redis answers, once Run has started, Ready fails while this
// replica cannot write its presence: the last heartbeat failed to write, or
// no heartbeat succeeded for a TTL (the process was stalled: its
// connections expired and are not re-registered yet).
func (s *Store) Ready(ctx context.Context) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if at := s.beatAt.Load(); at != 0 {
		if late := time.Duration(s.nowMs()-at) * time.Millisecond; late >= s.opts.TTL {
			return fmt.Errorf("%w: no successful heartbeat for %s (TTL %s): this replica's connections are not kept alive",
				presence.ErrUnavailable, late, s.opts.TTL)
		}
		if p := s.beatErr.Load(); p != nil && *p != nil {
			return fmt.Errorf("%w: the last heartbeat could not write: %w", presence.ErrUnavailable, *p)
		}
	}
	ok, bad := s.lastOK.Load(), s.lastFail.Load()
	if ok > bad && time.Since(time.Unix(0, ok)) < s.readyFresh() {
		return nil
	}
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if time.Since(s.readyAt) < 500*time.Millisecond {
		return s.readyErr
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var err error
	node, err := s.client().MasterForKey(ctx, s.keys.replicas())
	if err == nil {
		err = node.Ping(ctx).Err()
	}
	s.readyErr = nil
	if err != nil {
		s.redisTrouble()
		s.readyErr = fmt.Errorf("%w: redis cluster: %w", presence.ErrUnavailable, err)
	} else {
		s.noteOK()
	}
	s.readyAt = time.Now()
	return s.readyErr
}

// readyFresh is how recent a background success must be to vouch for Ready:
// a little more than the Run tick.
func (s *Store) readyFresh() time.Duration { return s.opts.Heartbeat/4 + time.Second }

func (s *Store) noteOK() { s.lastOK.Store(time.Now().UnixNano()) }

// Close removes this replica's connections, its index and its lease, then
// closes the client. An offline grace outlives the process: a connection
// still held is removed like a Disconnect (its user keeps the grace), and
// the users whose grace is pending stay in Redis with their deadline and in
// this incarnation's index; the lease is then made to lapse at once, so
// that a survivor reaps the index within a tick, adopts the pending graces
// and settles each at its deadline (see reap and the package doc). A user
// who reconnects to another replica within the grace is never announced
// offline.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	users := s.users
	s.users = map[string]*localUser{}
	retries := s.retries
	s.retries = map[presence.Conn]struct{}{}
	clear(s.graces)
	s.m.UsersHeld.Set(0)
	s.mu.Unlock()

	inc := s.incarnation()
	grace := strconv.FormatInt(s.opts.OfflineGrace.Milliseconds(), 10)
	now := s.now()
	var ops []userOp
	pending := map[string]bool{} // users whose grace is pending after Close
	for id, lu := range users {
		switch {
		case len(lu.conns) > 0:
			for cid := range lu.conns {
				ops = append(ops, userOp{userID: id, op: "disconnect", args: []string{member(inc, cid), grace}})
			}
		case lu.graceUntil.After(now):
			pending[id] = true
		default: // a grace that ended since the last tick
			ops = append(ops, userOp{userID: id, op: "settle"})
		}
	}
	for c := range retries { // removals that failed: once more
		ops = append(ops, userOp{userID: c.UserID, op: "disconnect", args: []string{member(inc, c.ID), grace}})
	}
	var errs []error
	for len(ops) > 0 {
		batch := ops[:min(len(ops), 256)]
		ops = ops[len(batch):]
		results, err := s.runUserBatch(ctx, batch)
		if err != nil {
			errs = append(errs, err)
		}
		for i, r := range results {
			if r.ok {
				// A user's ops run in order: the last one's answer stands.
				pending[batch[i].userID] = r.live == 0 && r.graceUntil > 0
			}
		}
	}
	var settled, left []any
	for id, p := range pending {
		if p {
			left = append(left, id)
		} else {
			settled = append(settled, id)
		}
	}
	if len(errs) == 0 {
		var err error
		if len(left) == 0 {
			err = s.client().Del(ctx, s.keys.index(inc)).Err()
			if err == nil {
				err = s.client().ZRem(ctx, s.keys.replicas(), inc).Err()
			}
		} else {
			if len(settled) > 0 {
				err = s.client().SRem(ctx, s.keys.index(inc), settled...).Err()
			}
			// Lapse now (XX: only our own lease, never re-create one a
			// survivor is already reaping), so the graces are handed over
			// within a tick rather than after a TTL.
			if err == nil {
				err = s.client().ZAddArgs(ctx, s.keys.replicas(), redis.ZAddArgs{XX: true, LT: true,
					Members: []redis.Z{{Score: float64(s.nowMs()), Member: inc}}}).Err()
			}
			s.log.Info("leaving pending offline graces to the other replicas", "users", len(left))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	s.sub.Close()
	s.closeRetired(true)
	if err := s.client().Close(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		// Whatever was not removed expires with the lease and is reaped.
		return fmt.Errorf("redisstore: close: %w", errors.Join(errs...))
	}
	return nil
}
