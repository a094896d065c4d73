package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presencekit/presence-operator/gateway/presence"
)

// refreshBatch bounds one pipeline of the heartbeat refresh.
const refreshBatch = 1000

// Run does the background work on one ticker: every heartbeat it renews
// this replica's lease and refreshes all local connections; every tick
// (a quarter heartbeat, or a quarter of the offline grace if shorter) it
// looks for lapsed replicas to reap and settles offline graces that ended,
// and follows a change of the seed nodes file (reseed). It also owns the subscriber's repair loop. It returns when ctx ends,
// without removing anything (that is Close's job).
func (s *Store) Run(ctx context.Context) error {
	s.beatAt.CompareAndSwap(0, s.nowMs()) // Ready allows the first heartbeat a TTL
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.sub.Run(ctx)
	}()
	defer wg.Wait()

	every := s.opts.Heartbeat / 4
	if g := s.opts.OfflineGrace / 4; g > 0 && g < every {
		every = g
	}
	every = max(every, 5*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	lastBeat := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if s.checkOpen() != nil {
			return nil
		}
		s.reseed(ctx)
		var lapsed []string
		if time.Since(lastBeat) >= s.opts.Heartbeat-every/2 {
			lastBeat = time.Now()
			lapsed = s.heartbeat(ctx)
		} else {
			lapsed = s.findLapsed(ctx)
		}
		for _, m := range lapsed {
			if ctx.Err() != nil {
				return nil
			}
			s.reap(ctx, m)
		}
		s.settleGraces(ctx)
	}
}

// heartbeat renews the lease, then refreshes every local connection,
// re-registering those whose entries are gone (stall recovery: see the
// presence.Store doc), and records the outcome for Ready. It returns the
// lapsed replicas the lease script saw.
func (s *Store) heartbeat(ctx context.Context) []string {
	now := s.nowMs()
	lapsed, err := s.beat(ctx)
	s.beatErr.Store(&err)
	if err == nil {
		s.beatAt.Store(now)
	}
	return lapsed
}

func (s *Store) beat(ctx context.Context) ([]string, error) {
	start := time.Now()
	defer func() { s.pm.HeartbeatBatchDuration.Observe(time.Since(start).Seconds()) }()
	ctx, cancel := context.WithTimeout(ctx, s.opts.Heartbeat)
	defer cancel()

	inc := s.incarnation()
	now := s.nowMs()
	res, err := leaseScript.Run(ctx, s.client(), []string{s.keys.replicas()}, inc, now+s.opts.TTL.Milliseconds(), now).Slice()
	s.observe("lease", start)
	if err != nil {
		s.redisTrouble()
		if !s.leaseFailing {
			s.log.Warn("lease renewal failed; retrying every heartbeat", "err", err)
			s.leaseFailing = true
		}
		return nil, fmt.Errorf("renew lease: %w", err)
	}
	s.noteOK()
	if s.leaseFailing {
		s.log.Info("lease renewal works again")
		s.leaseFailing = false
	}
	renewed, _ := res[0].(int64)
	lapsed := toStrings(res[1])
	if renewed != 1 {
		if err := s.reincarnate(ctx); err != nil {
			s.redisTrouble()
			s.log.Warn("re-registering this replica's connections failed; retrying next heartbeat", "err", err)
			return lapsed, fmt.Errorf("re-register connections: %w", err)
		}
		return lapsed, nil
	}
	err = s.refresh(ctx)
	if err != nil {
		s.log.Debug("heartbeat refresh failed", "err", err)
		err = fmt.Errorf("refresh connections: %w", err)
	}
	s.retryDisconnects(ctx)
	return lapsed, err
}

// findLapsed lists lapsed leases (between heartbeats, to reap sooner).
func (s *Store) findLapsed(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Heartbeat)
	defer cancel()
	start := time.Now()
	res, err := s.client().ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: s.keys.replicas(), Start: "-inf", Stop: s.nowMs(), ByScore: true, Count: 16,
	}).Result()
	s.observe("lapsed", start)
	if err != nil {
		s.redisTrouble()
		return nil
	}
	s.noteOK()
	return res
}

func toStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if str, ok := x.(string); ok {
			out = append(out, str)
		}
	}
	return out
}

// refreshItem is one user's connections to refresh.
type refreshItem struct {
	userID  string
	members []string
	renew   bool
}

// refresh extends every local connection's expiry: one
// ZADD XX GT CH per user (all its connections at once), pipelined in
// batches that the client groups by node. ZADD XX never creates an entry,
// so a connection removed meanwhile (Disconnect, a reaper) is not revived;
// CH tells how many were there, and a user with missing entries (Redis
// lost them in a failover or an outage) is restored by the script, which
// publishes the transition if there is one.
func (s *Store) refresh(ctx context.Context) error {
	inc := s.incarnation()
	now := time.Now()
	s.mu.Lock()
	items := make([]refreshItem, 0, len(s.users))
	for id, lu := range s.users {
		if len(lu.conns) == 0 {
			continue
		}
		it := refreshItem{userID: id, members: make([]string, 0, len(lu.conns))}
		for cid := range lu.conns {
			it.members = append(it.members, member(inc, cid))
		}
		if now.After(lu.keyRenewAt) {
			it.renew = true
			lu.keyRenewAt = now.Add(keyRenewEvery)
		}
		items = append(items, it)
	}
	s.mu.Unlock()

	var missing []string
	var errs []error
	for len(items) > 0 {
		batch := items[:min(len(items), refreshBatch)]
		items = items[len(batch):]
		exp := float64(s.nowMs() + s.opts.TTL.Milliseconds())
		cmds := make([]*redis.IntCmd, len(batch))
		start := time.Now()
		_, err := s.client().Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, it := range batch {
				zs := make([]redis.Z, len(it.members))
				for j, m := range it.members {
					zs[j] = redis.Z{Score: exp, Member: m}
				}
				cmds[i] = p.ZAddArgs(ctx, s.keys.conns(it.userID), redis.ZAddArgs{XX: true, GT: true, Ch: true, Members: zs})
				if it.renew {
					p.PExpire(ctx, s.keys.conns(it.userID), keyTTL)
				}
			}
			return nil
		})
		s.observe("refresh", start)
		if err != nil {
			errs = append(errs, err)
			s.redisTrouble()
		}
		for i, c := range cmds {
			if n, cerr := c.Result(); cerr == nil && int(n) < len(batch[i].members) {
				missing = append(missing, batch[i].userID)
			}
		}
	}
	if len(missing) > 0 {
		if err := s.restore(ctx, missing); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// restore re-adds this replica's connections of the given users under the
// current incarnation, taking each user's stripe so that no Connect or
// Disconnect of that user interleaves.
func (s *Store) restore(ctx context.Context, userIDs []string) error {
	inc := s.incarnation()
	var errs []error
	for len(userIDs) > 0 {
		batch := userIDs[:min(len(userIDs), refreshBatch)]
		userIDs = userIDs[len(batch):]
		locked := s.lockStripes(batch)
		ops := make([]userOp, 0, len(batch))
		idx := make([]any, 0, len(batch))
		s.mu.Lock()
		for _, id := range batch {
			lu := s.users[id]
			if lu == nil || len(lu.conns) == 0 {
				continue
			}
			args := make([]string, 0, len(lu.conns))
			for cid := range lu.conns {
				args = append(args, member(inc, cid))
			}
			ops = append(ops, userOp{userID: id, op: "restore", args: args})
			idx = append(idx, id)
		}
		s.mu.Unlock()
		var err error
		if len(idx) > 0 {
			err = s.client().SAdd(ctx, s.keys.index(inc), idx...).Err()
			if err == nil {
				_, err = s.runUserBatch(ctx, ops)
			}
		}
		unlockStripes(locked)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lockStripes locks the stripes of the given users in index order.
func (s *Store) lockStripes(userIDs []string) []*sync.Mutex {
	var need [64]bool
	for _, id := range userIDs {
		need[s.indexOfStripe(id)] = true
	}
	var out []*sync.Mutex
	for i := range need {
		if need[i] {
			s.stripes[i].Lock()
			out = append(out, &s.stripes[i])
		}
	}
	return out
}

func unlockStripes(ms []*sync.Mutex) {
	for _, m := range ms {
		m.Unlock()
	}
}

// reincarnate runs when our lease was gone or lapsed: survivors may be
// reaping the old incarnation's connections right now, so we must not touch
// them. We take a new incarnation, register its lease, and re-add all our
// connections under it; the old incarnation is left to the reapers (or to
// ourselves: it is in the lapsed list like any other).
func (s *Store) reincarnate(ctx context.Context) error {
	old := s.incarnation()
	inc := newIncarnation(s.cfg.ReplicaName)
	s.inc.Store(&inc)
	s.log.Warn("lease lost (Redis unreachable or data lost); re-registering connections", "old", old, "new", inc)
	if err := s.client().ZAdd(ctx, s.keys.replicas(), redis.Z{Score: float64(s.leaseExpiry()), Member: inc}).Err(); err != nil {
		return fmt.Errorf("register lease %s: %w", inc, err)
	}
	// The old lease, if still there, must lapse now so it is reaped at once.
	_ = s.client().ZAddArgs(ctx, s.keys.replicas(), redis.ZAddArgs{XX: true, LT: true, Members: []redis.Z{{Score: 0, Member: old}}}).Err()
	s.mu.Lock()
	ids := make([]string, 0, len(s.users))
	for id := range s.users {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	return s.restore(ctx, ids)
}

// reap removes a lapsed replica's connections, if this replica wins the
// claim (see claimScript). It walks the dead incarnation's user index with
// SSCAN and runs the "reap" op of userScript on each user, pipelined; each
// user's offline event is published by the script. The claim is extended
// as it goes, and removed at the end with the index.
func (s *Store) reap(ctx context.Context, lapsedMember string) {
	claimTTL := s.opts.TTL.Milliseconds()
	now := s.nowMs()
	if lapsedMember == s.incarnation() {
		return // our own lease lapsed: the next heartbeat reincarnates
	}
	v, err := claimScript.Run(ctx, s.client(), []string{s.keys.replicas()}, lapsedMember, now, now+claimTTL).Result()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			s.redisTrouble()
		}
		return
	}
	inc, _ := v.(string)
	if inc == "" {
		return
	}
	log := s.log.With("replica", inc)
	var cursor uint64
	total := 0
	for range 100_000 { // bounded: 100k batches of up to 500 users
		ids, next, err := s.client().SScan(ctx, s.keys.index(inc), cursor, "", 500).Result()
		if err != nil {
			s.redisTrouble()
			log.Warn("reaping: scan failed; another survivor takes over when the claim lapses", "err", err)
			return
		}
		ops := make([]userOp, 0, len(ids))
		for _, id := range ids {
			if checkUserID(id) == nil {
				ops = append(ops, userOp{userID: id, op: "reap", args: []string{inc + "|"}})
			}
		}
		results, err := s.runUserBatch(ctx, ops)
		s.adoptGraces(ctx, ops, results)
		if err != nil {
			log.Warn("reaping: some users failed; another survivor takes over when the claim lapses", "err", err)
			return
		}
		total += len(ops)
		_ = s.client().ZAddArgs(ctx, s.keys.replicas(), redis.ZAddArgs{XX: true, Members: []redis.Z{{Score: float64(s.nowMs() + claimTTL), Member: "reap:" + inc}}}).Err()
		cursor = next
		if cursor == 0 {
			break
		}
	}
	if err := s.client().Del(ctx, s.keys.index(inc)).Err(); err != nil {
		s.redisTrouble()
	}
	if err := s.client().ZRem(ctx, s.keys.replicas(), "reap:"+inc).Err(); err != nil {
		s.redisTrouble()
	}
	log.Info("reaped a lapsed replica", "users", total)
}

// adoptGraces takes over the offline graces still pending among reaped
// users: those with no live connection anywhere whose grace deadline is
// ahead (a replica that exited left them, see Close; or one that died
// right after a disconnect). Each goes into this replica's index, so that
// should this one go too, the next survivor adopts it in turn, and into
// its local graces, which settleGraces settles at the deadline with the
// script: atomically, so a user who reconnected anywhere meanwhile is
// left online, and one who did not is announced offline, once.
func (s *Store) adoptGraces(ctx context.Context, ops []userOp, results []scriptResult) {
	var ids []any
	s.mu.Lock()
	for i, r := range results {
		if !r.ok || r.live > 0 || r.graceUntil <= 0 {
			continue
		}
		id := ops[i].userID
		lu := s.users[id]
		if lu == nil {
			lu = &localUser{conns: map[string]struct{}{}}
			s.users[id] = lu
		}
		if until := time.UnixMilli(r.graceUntil); len(lu.conns) == 0 && until.After(lu.graceUntil) {
			lu.graceUntil = until
			s.graces[id] = struct{}{}
		}
		ids = append(ids, id)
	}
	s.m.UsersHeld.Set(float64(len(s.users)))
	s.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := s.client().SAdd(ctx, s.keys.index(s.incarnation()), ids...).Err(); err != nil {
		// This replica still settles them; only its own death would now
		// leave them to expire silently (reads are right either way).
		s.redisTrouble()
		s.log.Warn("adopting offline graces: recording them in this replica's index failed", "users", len(ids), "err", err)
	}
}

// settleGraces publishes the offline of users whose grace ended here.
func (s *Store) settleGraces(ctx context.Context) {
	now := s.now()
	s.mu.Lock()
	var due []string
	for id := range s.graces {
		lu := s.users[id]
		if lu == nil || len(lu.conns) > 0 {
			delete(s.graces, id)
			continue
		}
		if !lu.graceUntil.IsZero() && !now.Before(lu.graceUntil) {
			due = append(due, id)
		}
	}
	s.mu.Unlock()
	for _, id := range due {
		mu := s.stripe(id)
		mu.Lock()
		s.mu.Lock()
		lu := s.users[id]
		stillDue := lu != nil && len(lu.conns) == 0 && !lu.graceUntil.IsZero()
		s.mu.Unlock()
		if stillDue {
			res, err := s.runUser(ctx, "settle", id)
			if err != nil {
				s.redisTrouble()
			} else {
				s.afterRemoval(ctx, id, res)
			}
		}
		mu.Unlock()
	}
}

// retryDisconnects re-sends the removals that failed.
func (s *Store) retryDisconnects(ctx context.Context) {
	s.mu.Lock()
	if len(s.retries) == 0 {
		s.mu.Unlock()
		return
	}
	pending := s.retries
	s.retries = make(map[presence.Conn]struct{})
	s.mu.Unlock()
	failed := false
	for c := range pending {
		if failed { // Redis still failing: keep the rest for the next heartbeat
			s.mu.Lock()
			s.retries[c] = struct{}{}
			s.mu.Unlock()
			continue
		}
		if _, err := s.Disconnect(ctx, c); err != nil {
			failed = true // Disconnect re-queued this one
		}
	}
}
