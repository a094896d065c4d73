package main

// Storm scenarios (-storm NAME): loadgen starts the gateways itself (real
// presence-gateway processes on a Redis Cluster that is already up), puts
// clients on them from worker processes, makes the storm and prints what
// happened. hack/loadgen/storm.sh brings the cluster up and down around it.
//
//	replica-loss     SIGKILL one of three gateways
//	rolling-restart  SIGTERM each gateway in turn, a replacement on its port
//	failover         CLUSTER FAILOVER on a replica, then SIGKILL of a master
//	mass-disconnect  N users connect and close at once under ten big watchers
//
// Clients reconnect like the demo's client: exponential backoff with equal
// jitter (500 ms doubling up to 30 s), reset by a welcome. A client whose
// connection drops, or whose attempt fails, tries another gateway picked at
// random, as behind a load balancer that has taken the lost pod out.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

type downSpan struct {
	from, to time.Time // to is zero while the client is not back
	code     int
	reason   string
}

type clientState struct {
	up    bool
	gw    int
	since time.Time // of the last up
	downs []downSpan
	ups   []time.Time
}

type workerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

type storm struct {
	o    options
	gws  []*gwProc
	urls []string
	apis []string

	mu      sync.Mutex
	clients []clientState
	closed  int // workers that reported "closed"
	byes    int // clients closed on purpose (-close-on-welcome)
	// refusals counts failed connection attempts by reason ("503 store_unavailable").
	refusals map[string]int
	gaveUp   int
	workers  []*workerProc
	ids      map[string]int

	watchers []*watcher
	sampler  *sampler
	report   map[string]any
}

func (s *storm) logf(format string, args ...any) {
	log.Printf("["+s.o.storm+"] "+format, args...)
}

func (s *storm) userID(i int) string { return fmt.Sprintf("%s-%d", s.o.prefix, i) }

// startClients spawns the worker processes for n clients.
func (s *storm) startClients(n int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	s.clients = make([]clientState, n)
	s.ids = make(map[string]int, n)
	for i := range n {
		s.ids[s.userID(i)] = i
	}
	for wi, off := 0, 0; off < n; wi, off = wi+1, off+s.o.perProcess {
		cnt := min(s.o.perProcess, n-off)
		cmd := exec.Command(self, "-storm-worker", "-worker-id", strconv.Itoa(wi), "-offset", strconv.Itoa(off),
			"-conns", strconv.Itoa(cnt), "-gateways", strings.Join(s.urls, ","), "-prefix", s.o.prefix,
			"-ping", s.o.ping.String(), "-dialers", strconv.Itoa(s.o.dialers), "-per-process", strconv.Itoa(s.o.perProcess),
			"-storm-deadline", s.o.stormDeadline.String(), "-max-tries", strconv.Itoa(s.o.maxTries),
			"-backoff-base", s.o.backoffBase.String(), "-backoff-cap", s.o.backoffCap.String(),
			"-close-on-welcome="+strconv.FormatBool(s.o.closeOnWelcome))
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		wp := &workerProc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
		s.workers = append(s.workers, wp)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var e clientEvent
				if json.Unmarshal(sc.Bytes(), &e) == nil {
					s.apply(e)
				}
			}
			_ = cmd.Wait()
			close(wp.done)
		}()
	}
	return nil
}

func (s *storm) apply(e clientEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := time.Unix(0, e.T)
	if e.Kind == "closed" {
		s.closed++
		return
	}
	if e.Index < 0 || e.Index >= len(s.clients) {
		return
	}
	c := &s.clients[e.Index]
	switch e.Kind {
	case "up":
		c.up, c.gw, c.since = true, e.GW, t
		c.ups = append(c.ups, t)
		if n := len(c.downs); n > 0 && c.downs[n-1].to.IsZero() {
			c.downs[n-1].to = t
		}
	case "down":
		c.up = false
		c.downs = append(c.downs, downSpan{from: t, code: e.Code, reason: e.Reason})
	case "gaveup":
		s.gaveUp++
	case "fail":
		s.refusals[e.Reason]++
	case "bye":
		c.up = false
		s.byes++
	}
}

// waitUp waits (bounded) until n clients are up; it returns how many are.
func (s *storm) waitUp(ctx context.Context, n int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		up := 0
		for i := range s.clients {
			if s.clients[i].up {
				up++
			}
		}
		s.mu.Unlock()
		if up >= n || time.Now().After(deadline) || !sleepCtx(ctx, 100*time.Millisecond) {
			return up
		}
	}
}

// waitBack waits (bounded) until every client of set has been up again after t0.
func (s *storm) waitBack(ctx context.Context, set []int, t0 time.Time, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, missing := s.backTimes(set, t0); missing == 0 || !sleepCtx(ctx, 100*time.Millisecond) {
			return
		}
	}
}

// closeClients asks every worker to close its clients and waits (bounded).
func (s *storm) closeClients(ctx context.Context, within time.Duration) {
	for _, w := range s.workers {
		_, _ = io.WriteString(w.stdin, "close\n")
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && sleepCtx(ctx, 50*time.Millisecond) {
		s.mu.Lock()
		done := s.closed >= len(s.workers)
		s.mu.Unlock()
		if done {
			return
		}
	}
}

func (s *storm) stopWorkers() {
	for _, w := range s.workers {
		_ = w.stdin.Close()
	}
	for _, w := range s.workers {
		select {
		case <-w.done:
		case <-time.After(20 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.done
		}
	}
}

// startWatchers starts n watchers, watcher w watching users(w), on
// gateways w, w+1, ... and waits (bounded) for their snapshots.
func (s *storm) startWatchers(ctx context.Context, n int, users func(w int) []string) error {
	for w := range n {
		wi := w
		ws := newWatcher(fmt.Sprintf("%s-watcher-%d", s.o.prefix, w), s.urls, w%len(s.urls), users(w), &s.o,
			func(conn, _ int) *net.TCPAddr { return sourceAddr(150+wi/200, (wi%200)*50+conn) })
		s.watchers = append(s.watchers, ws)
		ws.start(ctx)
	}
	done := make(chan struct{})
	go func() {
		for _, w := range s.watchers {
			w.ready.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(2 * time.Minute):
		return errors.New("watchers: no snapshot within 2 minutes")
	}
}

// watcherTotals sums the watchers' counters.
func (s *storm) watcherTotals() (events int64, cuts, reconnects int, closes map[string]int) {
	closes = map[string]int{}
	for _, w := range s.watchers {
		w.mu.Lock()
		events += w.events
		cuts += w.cuts
		reconnects += w.reconnect
		for k, v := range w.closes {
			closes[k] += v
		}
		w.mu.Unlock()
	}
	return
}

// clientCloses counts the clients' drops by close code and reason, among
// drops that began in [from, to).
func (s *storm) clientCloses(from, to time.Time) (n int, cuts int, byCode map[string]int) {
	byCode = map[string]int{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.clients {
		for _, d := range s.clients[i].downs {
			if d.from.Before(from) || !d.from.Before(to) {
				continue
			}
			n++
			if d.code == 1008 {
				cuts++
			}
			byCode[fmt.Sprintf("%d %s", d.code, d.reason)]++
		}
	}
	return
}

// falseOffline counts the offline events watchers received after from for
// users whose every drop was shorter than the grace (or who never dropped).
func (s *storm) falseOffline(from time.Time, grace time.Duration) (total, falseN int, examples []string) {
	s.mu.Lock()
	spans := func(i int) string { // the user's drops, relative to from
		var b strings.Builder
		for _, d := range s.clients[i].downs {
			to := "not back"
			if !d.to.IsZero() {
				to = fmt.Sprintf("+%.2fs", d.to.Sub(from).Seconds())
			}
			fmt.Fprintf(&b, " [+%.2fs, %s)", d.from.Sub(from).Seconds(), to)
		}
		if b.Len() == 0 {
			return " none"
		}
		return b.String()
	}
	longDown := make(map[int]bool)
	for i := range s.clients {
		for _, d := range s.clients[i].downs {
			if d.to.IsZero() || d.to.Sub(d.from) >= grace {
				longDown[i] = true
			}
		}
	}
	for _, w := range s.watchers {
		w.mu.Lock()
		for _, ev := range w.offline {
			if ev.t.Before(from) {
				continue
			}
			total++
			if i, ok := s.ids[ev.user]; ok && !longDown[i] {
				falseN++
				if len(examples) < 5 {
					examples = append(examples, fmt.Sprintf("%s saw %s offline at +%.2fs; its drops:%s", w.name, ev.user,
						ev.t.Sub(from).Seconds(), spans(i)))
				}
			}
		}
		w.mu.Unlock()
	}
	s.mu.Unlock()
	return
}

// backTimes is, for the clients in set, the time from t0 to their first up
// after t0, sorted; missing counts those not back.
func (s *storm) backTimes(set []int, t0 time.Time) (d []time.Duration, missing int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range set {
		found := false
		for _, u := range s.clients[i].ups {
			if u.After(t0) {
				d = append(d, u.Sub(t0))
				found = true
				break
			}
		}
		if !found {
			missing++
		}
	}
	sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
	return d, missing
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return -1
	}
	return d[min(len(d)-1, int(float64(len(d))*q+0.5)-1)]
}

// clientsOn lists the clients up on gateway g.
func (s *storm) clientsOn(g int) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for i := range s.clients {
		if s.clients[i].up && s.clients[i].gw == g {
			out = append(out, i)
		}
	}
	return out
}

// allOnline is the expectation for every client: online, one connection.
func (s *storm) allOnline() map[string]expectation {
	want := make(map[string]expectation, len(s.clients))
	for i := range s.clients {
		want[s.userID(i)] = expectation{online: true, status: "online", connections: 1}
	}
	return want
}

func (s *storm) set(key string, v any) { s.report[key] = v }

func (s *storm) printf(format string, args ...any) {
	if !s.o.jsonOut {
		fmt.Printf(format, args...)
	}
}

// gatewayEnv is the gateways' environment for the scenario.
func (s *storm) gatewayEnv() []string {
	env := []string{"REDIS_NODES=" + strings.Join(s.o.redisNodes, ","), "OFFLINE_GRACE=" + s.o.grace.String()}
	return append(env, splitList(s.o.gatewayEnv)...)
}

// watchBlocks gives watcher w the count users starting at w*stride (mod n):
// consecutive users sit on different gateways, so each watcher sees all.
func (s *storm) watchBlocks(n, watchers, count int) func(w int) []string {
	return func(w int) []string {
		stride := max(1, n/max(1, watchers))
		out := make([]string, 0, count)
		for k := 0; k < min(count, n); k++ {
			out = append(out, s.userID((w*stride+k)%n))
		}
		return out
	}
}

// settleTruth checks the presence of every client, then the watchers'
// newest states against it (bounded retries: the watchers may lag the
// check by a moment).
func (s *storm) settleTruth(ctx context.Context, want map[string]expectation, within time.Duration) {
	tr := truthCheck(ctx, s.apis, want, within)
	s.printf("final presence       %s\n", tr)
	s.set("truth", tr)
	if len(s.watchers) == 0 {
		return
	}
	var checked, wrong, older int
	var ex []string
	for k := 0; k < 10; k++ {
		// Watched users outside want (none today) would be missing from tr.present.
		checked, wrong, older, ex = watchersVsTruth(s.watchers, tr.present)
		if wrong+older == 0 || !sleepCtx(ctx, time.Second) {
			break
		}
		got, err := fetchPresence(ctx, s.apis, keys(want))
		if err == nil {
			tr.present = got
		}
	}
	s.printf("watchers vs truth    %d watched (watcher, user) pairs: %d with a wrong state (online, status, text), %d with the state right but an older version\n",
		checked, wrong, older)
	for _, e := range ex {
		s.printf("      e.g. %s\n", e)
	}
	s.set("watchersChecked", checked)
	s.set("watchersWrong", wrong)
	s.set("watchersOlderVersion", older)
}

func keys(m map[string]expectation) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (s *storm) printWatchers(from time.Time) {
	events, cuts, reconnects, closes := s.watcherTotals()
	s.printf("watchers             %d watchers: %d events, %d connections cut with 1008 (slow consumer), %d reconnects %v\n",
		len(s.watchers), events, cuts, reconnects, closes)
	total, falseN, ex := s.falseOffline(from, s.o.grace)
	s.printf("offline events       %d seen after the storm began; %d for users who were never down for the grace (%s) [target 0]\n",
		total, falseN, s.o.grace)
	for _, e := range ex {
		s.printf("      e.g. %s\n", e)
	}
	s.set("watcherEvents", events)
	s.set("watcherCuts", cuts)
	s.set("watcherReconnects", reconnects)
	s.set("watcherCloses", closes)
	s.set("offlineEvents", total)
	s.set("falseOfflineEvents", falseN)
}

// ---- the scenarios ----

// quietRedis drops go-redis's own log lines (dial failures to the node
// the failover scenario killed, on purpose).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func runStorm(o options) error {
	redis.SetLogger(quietRedis{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.stormDeadline)
	defer cancel()
	if len(o.redisNodes) == 0 {
		return errors.New("-redis: the Redis Cluster's nodes are needed")
	}
	s := &storm{o: o, refusals: map[string]int{}, report: map[string]any{"scenario": o.storm, "started": time.Now().UTC().Format(time.RFC3339)}}
	n := 3
	if o.gatewaysN > 0 {
		n = o.gatewaysN
	}
	var err error
	s.gws, err = startGateways(o, n, s.gatewayEnv())
	defer func() {
		for _, g := range s.gws {
			if g != nil {
				g.signal(syscall.SIGKILL, 5*time.Second)
			}
		}
	}()
	if err != nil {
		return err
	}
	for _, g := range s.gws {
		s.urls = append(s.urls, g.url())
		s.apis = append(s.apis, g.api())
	}
	s.sampler = newSampler(s.gws, o.redisNodes)
	defer s.sampler.close()
	defer s.stopWorkers()
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel() // the watchers and probers

	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		s.set("loadavgAtStart", strings.TrimSpace(string(la)))
		s.printf("scenario %s, %d gateways (%s), load average at start: %s\n", o.storm, n, strings.Join(s.gatewayEnv()[1:], " "),
			strings.TrimSpace(string(la)))
	}
	switch o.storm {
	case "replica-loss":
		err = s.replicaLoss(ctx, wctx)
	case "rolling-restart":
		err = s.rollingRestart(ctx, wctx)
	case "failover":
		err = s.failover(ctx, wctx)
	case "mass-disconnect":
		err = s.massDisconnect(ctx, wctx)
	default:
		err = fmt.Errorf("-storm %q: want replica-loss, rolling-restart, failover or mass-disconnect", o.storm)
	}
	s.mu.Lock()
	s.printf("failed attempts      %v (all clients, whole run)\n", s.refusals)
	s.set("failedAttempts", s.refusals)
	s.mu.Unlock()
	if s.gaveUp > 0 {
		s.printf("clients that gave up %d (more than -max-tries failed attempts in a row)\n", s.gaveUp)
	}
	if o.jsonOut {
		b, _ := json.MarshalIndent(s.report, "", "  ")
		fmt.Println(string(b))
	}
	return err
}

// connectAll starts the clients and waits for all of them.
func (s *storm) connectAll(ctx context.Context, n int) error {
	t0 := time.Now()
	if err := s.startClients(n); err != nil {
		return err
	}
	if up := s.waitUp(ctx, n, 5*time.Minute); up < n {
		return fmt.Errorf("only %d of %d clients connected within 5 minutes", up, n)
	}
	s.printf("clients              %d connected in %.1fs\n", n, time.Since(t0).Seconds())
	s.set("clients", n)
	s.set("connectSeconds", time.Since(t0).Seconds())
	return nil
}

func (s *storm) replicaLoss(ctx, wctx context.Context) error {
	n := s.o.stormClients
	if err := s.connectAll(ctx, n); err != nil {
		return err
	}
	if err := s.startWatchers(wctx, s.o.watchersN, s.watchBlocks(n, s.o.watchersN, s.o.watchCount)); err != nil {
		return err
	}
	s.logf("%d watchers of %d users each ready", s.o.watchersN, s.o.watchCount)
	sleepCtx(ctx, 2*time.Second)
	stopSampling := s.sampler.window(ctx)
	victim := 0
	lost := s.clientsOn(victim)
	t0 := time.Now()
	s.logf("SIGKILL gateway %d (pid %d) with %d clients", victim, s.gws[victim].pid(), len(lost))
	s.gws[victim].signal(syscall.SIGKILL, 5*time.Second)
	s.waitBack(ctx, lost, t0, s.o.stormWait)
	d, missing := s.backTimes(lost, t0)
	// Offline events for users that were down longer than the grace come
	// after it: wait it out before counting.
	sleepCtx(ctx, s.o.grace+3*time.Second)
	sr := stopSampling()

	s.printf("killed gateway       %d clients lost their connection\n", len(lost))
	s.printf("back                 99%% in %.2fs, 100%% in %.2fs (%d not back within %s) [target 5,000 within 10 s]\n",
		quantile(d, 0.99).Seconds(), quantile(d, 1).Seconds(), missing, s.o.stormWait)
	s.set("lostClients", len(lost))
	s.set("back99Seconds", quantile(d, 0.99).Seconds())
	s.set("back100Seconds", quantile(d, 1).Seconds())
	s.set("notBack", missing)
	drops, cuts, codes := s.clientCloses(t0.Add(-time.Second), time.Now())
	s.printf("client drops         %d %v; %d cut with 1008\n", drops, codes, cuts)
	s.set("clientDrops", drops)
	s.set("clientCuts", cuts)
	s.printWatchers(t0)
	s.printf("load                 %s\n", sr)
	s.set("load", sr)
	s.apis = append(s.apis[:victim:victim], s.apis[victim+1:]...) // ask the survivors
	s.settleTruth(ctx, s.allOnline(), s.o.truthWait)
	return nil
}

func (s *storm) rollingRestart(ctx, wctx context.Context) error {
	n := s.o.stormClients
	if err := s.connectAll(ctx, n); err != nil {
		return err
	}
	if err := s.startWatchers(wctx, s.o.watchersN, s.watchBlocks(n, s.o.watchersN, s.o.watchCount)); err != nil {
		return err
	}
	sleepCtx(ctx, 2*time.Second)
	stopSampling := s.sampler.window(ctx)
	t0 := time.Now()
	var steps []map[string]any
	for i, g := range s.gws {
		on := s.clientsOn(i)
		ts := time.Now()
		s.logf("SIGTERM gateway %d (pid %d, %d clients)", i, g.pid(), len(on))
		g.signal(syscall.SIGTERM, s.o.termWait)
		exited := time.Since(ts)
		if err := g.start(s.o.gatewayBin, 30*time.Second); err != nil {
			return err
		}
		ready := time.Since(ts)
		s.waitBack(ctx, on, ts, s.o.stormWait)
		up := s.waitUp(ctx, n, 10*time.Second)
		d, missing := s.backTimes(on, ts)
		step := map[string]any{"gateway": i, "clients": len(on), "exitedSeconds": exited.Seconds(),
			"replacementReadySeconds": ready.Seconds(), "back100Seconds": quantile(d, 1).Seconds(), "notBack": missing, "up": up}
		steps = append(steps, step)
		s.printf("gateway %d            %d clients; exited %.1fs after SIGTERM, replacement ready at %.1fs; all back %.1fs after SIGTERM (%d not back)\n",
			i, len(on), exited.Seconds(), ready.Seconds(), quantile(d, 1).Seconds(), missing)
	}
	s.set("steps", steps)
	sleepCtx(ctx, s.o.grace+3*time.Second)
	sr := stopSampling()
	drops, cuts, codes := s.clientCloses(t0, time.Now())
	s.printf("client drops         %d %v; %d cut with 1008\n", drops, codes, cuts)
	s.set("clientDrops", drops)
	s.set("clientCuts", cuts)
	s.printWatchers(t0)
	s.printf("load                 %s\n", sr)
	s.set("load", sr)
	s.settleTruth(ctx, s.allOnline(), s.o.truthWait)
	return nil
}

// shard is one master's slot ranges and its replica, from CLUSTER SHARDS.
type shard struct {
	master, replica string
	ranges          [][2]int64
}

func clusterShards(ctx context.Context, nodes []string) ([]shard, error) {
	var lastErr error
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n, DialTimeout: time.Second, MaxRetries: -1})
		got, err := c.ClusterShards(ctx).Result()
		_ = c.Close()
		if err != nil {
			lastErr = err
			continue
		}
		var shards []shard
		for _, cs := range got {
			sh := shard{}
			for _, node := range cs.Nodes {
				addr := net.JoinHostPort(node.IP, strconv.FormatInt(node.Port, 10))
				// As CLUSTER SLOTS listed them: the master and its first
				// replica, whatever their health (a replica still syncing
				// right after the cluster forms says "loading").
				switch {
				case node.Role == "master":
					sh.master = addr
				case sh.replica == "":
					sh.replica = addr
				}
			}
			if len(cs.Slots) == 0 || sh.master == "" {
				continue // a shard that serves no slot
			}
			if sh.replica == "" {
				return nil, fmt.Errorf("the shard of master %s has no replica", sh.master)
			}
			for _, r := range cs.Slots {
				sh.ranges = append(sh.ranges, [2]int64{r.Start, r.End})
			}
			shards = append(shards, sh)
		}
		sort.Slice(shards, func(i, j int) bool { return shards[i].master < shards[j].master })
		return shards, nil
	}
	return nil, lastErr
}

func (sh shard) owns(slot int64) bool {
	for _, r := range sh.ranges {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

func role(ctx context.Context, addr string) string {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	info, err := c.InfoMap(ctx, "replication").Result()
	if err != nil {
		return "down"
	}
	return strings.TrimSpace(info["Replication"]["role"])
}

// waitRole waits (bounded) until addr has the role.
func waitRole(ctx context.Context, addr, want string, within time.Duration) (time.Duration, error) {
	t0 := time.Now()
	for time.Since(t0) < within {
		if role(ctx, addr) == want {
			return time.Since(t0), nil
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
	return 0, fmt.Errorf("%s not %s within %s", addr, want, within)
}

func (s *storm) redisScript(verb, port string) error {
	cmd := exec.Command(s.o.redisScript, verb, port)
	cmd.Env = append(os.Environ(), "REDIS_CLUSTER_BASE_PORT="+s.o.redisBasePort())
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

func (o options) redisBasePort() string {
	_, p, _ := strings.Cut(o.redisNodes[0], ":")
	return p
}

func (s *storm) failover(ctx, wctx context.Context) error {
	n := s.o.stormClients
	shards, err := clusterShards(ctx, s.o.redisNodes)
	if err != nil || len(shards) < 2 {
		return fmt.Errorf("CLUSTER SHARDS: %w (%d shards)", err, len(shards))
	}
	target := shards[0]
	s.logf("shard under test: master %s, replica %s, slots %v", target.master, target.replica, target.ranges)
	// Probers: users whose slot is on the target shard, and one control user elsewhere.
	rc := redis.NewClient(&redis.Options{Addr: target.master, DialTimeout: time.Second})
	var probeUsers []string
	control := ""
	for k := 0; k < 2000 && (len(probeUsers) < s.o.probers || control == ""); k++ {
		u := fmt.Sprintf("%s-probe-%d", s.o.prefix, k)
		slot, err := rc.ClusterKeySlot(ctx, "{"+u+"}").Result()
		if err != nil {
			_ = rc.Close()
			return err
		}
		if target.owns(slot) && len(probeUsers) < s.o.probers {
			probeUsers = append(probeUsers, u)
		} else if !target.owns(slot) && control == "" {
			control = u
		}
	}
	_ = rc.Close()
	if err := s.connectAll(ctx, n); err != nil {
		return err
	}
	var probers []*prober
	for k, u := range append(probeUsers, control) {
		p := newProber(u, s.urls, k%len(s.urls), sourceAddr(180, k), &s.o)
		ready := make(chan struct{})
		go p.run(wctx, ready)
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("prober %s: not connected within 30s", u)
		}
		probers = append(probers, p)
	}
	watchOf := s.watchBlocks(n, s.o.watchersN, s.o.watchCount)
	if err := s.startWatchers(wctx, s.o.watchersN, func(w int) []string {
		return append(watchOf(w), append(probeUsers, control)...)
	}); err != nil {
		return err
	}
	for _, p := range probers {
		go p.loop(wctx)
	}
	sleepCtx(ctx, 3*time.Second)
	stopSampling := s.sampler.window(ctx)

	phase := func(name string, t0, t1 time.Time) {
		drops, cuts, codes := s.clientCloses(t0, t1)
		pdrops := 0
		for _, p := range probers {
			pdrops += p.dropsIn(t0, t1)
		}
		s.printf("%-20s client disconnects %d %v (%d cut with 1008), prober disconnects %d [target 0]\n", name, drops, codes, cuts, pdrops)
		ph := map[string]any{"clientDisconnects": drops, "clientCuts": cuts, "proberDisconnects": pdrops, "seconds": t1.Sub(t0).Seconds()}
		for k, p := range probers {
			nf, first, last := p.failWindow(t0, t1)
			label := "shard's user"
			if k == len(probers)-1 {
				label = "control (other shard)"
			}
			w := 0.0
			if nf > 0 {
				w = last.Sub(first).Seconds() + p.every.Seconds()
			}
			s.printf("%-20s prober %s (%s): %d failed writes, window %.2fs (first fail +%.2fs)\n", "", p.user, label, nf, w,
				max(0, first.Sub(t0).Seconds()))
			ph["prober"+strconv.Itoa(k)+"FailedWrites"] = nf
			ph["prober"+strconv.Itoa(k)+"WindowSeconds"] = w
		}
		s.set(name, ph)
	}

	// Phase 1: a graceful failover (CLUSTER FAILOVER on the replica).
	t1 := time.Now()
	s.logf("CLUSTER FAILOVER on %s", target.replica)
	r := redis.NewClient(&redis.Options{Addr: target.replica, DialTimeout: time.Second})
	err = r.Do(ctx, "CLUSTER", "FAILOVER").Err()
	_ = r.Close()
	if err != nil {
		return fmt.Errorf("CLUSTER FAILOVER on %s: %w", target.replica, err)
	}
	took, err := waitRole(ctx, target.replica, "master", 30*time.Second)
	if err != nil {
		return err
	}
	s.printf("cluster failover     %s master after %.2fs\n", target.replica, took.Seconds())
	sleepCtx(ctx, 5*time.Second)
	t2 := time.Now()
	phase("manual-failover", t1, t2)

	// Phase 2: SIGKILL the shard's master (the promoted replica), wait for
	// the old master to take over, start the killed node again.
	_, port, _ := strings.Cut(target.replica, ":")
	s.logf("SIGKILL the master %s", target.replica)
	if err := s.redisScript("stop-node", port); err != nil {
		return err
	}
	took, err = waitRole(ctx, target.master, "master", 60*time.Second)
	if err != nil {
		return err
	}
	s.printf("master killed        %s master again after %.2fs\n", target.master, took.Seconds())
	sleepCtx(ctx, 5*time.Second)
	if err := s.redisScript("start-node", port); err != nil {
		return err
	}
	if err := s.redisScript("wait", ""); err != nil {
		s.logf("cluster not ok after restarting %s: %v", target.replica, err)
	}
	sleepCtx(ctx, 3*time.Second)
	t3 := time.Now()
	phase("master-killed", t2, t3)
	sr := stopSampling()
	s.printf("load                 %s\n", sr)
	s.set("load", sr)

	// The probers' last word: one more write each, acknowledged.
	want := s.allOnline()
	for _, p := range probers {
		p.stopWrites.Store(true)
	}
	sleepCtx(ctx, 2*p0timeout(probers))
	for _, p := range probers {
		var last probeWrite
		for k := 0; k < 20; k++ {
			p.write(ctx, "busy", fmt.Sprintf("final-%d", k))
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) && sleepCtx(ctx, 50*time.Millisecond) {
				p.mu.Lock()
				last = p.last
				p.mu.Unlock()
				if last.text == fmt.Sprintf("final-%d", k) {
					break
				}
			}
			if last.text == fmt.Sprintf("final-%d", k) {
				break
			}
		}
		want[p.user] = expectation{online: true, status: last.status, text: last.text, connections: 1}
		p.mu.Lock()
		s.printf("prober %-13s  %d ok, errors %v, drops %v\n", p.user, p.ok, p.errs, p.dropCodes)
		p.mu.Unlock()
	}
	s.printWatchers(t1)
	s.settleTruth(ctx, want, s.o.truthWait)
	return nil
}

func p0timeout(ps []*prober) time.Duration {
	if len(ps) == 0 {
		return 0
	}
	return ps[0].timeout
}

func (s *storm) massDisconnect(ctx, wctx context.Context) error {
	n := s.o.stormClients
	users := make([]string, n)
	for i := range users {
		users[i] = s.userID(i)
	}
	if err := s.startWatchers(wctx, s.o.watchersN, func(int) []string { return users }); err != nil {
		return err
	}
	s.logf("%d watchers of all %d users ready", s.o.watchersN, n)
	stopSampling := s.sampler.window(ctx)
	t0 := time.Now()
	if err := s.startClients(n); err != nil {
		return err
	}
	var connected, closed time.Duration
	var t1 time.Time
	if s.o.closeOnWelcome {
		// Each user closes as soon as it is welcomed: one burst of both events.
		deadline := time.Now().Add(5 * time.Minute)
		for time.Now().Before(deadline) && sleepCtx(ctx, 50*time.Millisecond) {
			s.mu.Lock()
			done := s.byes >= n
			s.mu.Unlock()
			if done {
				break
			}
		}
		t1 = t0
		connected = time.Since(t0)
		closed = connected
		s.mu.Lock()
		s.printf("connect and close    %d of %d users connected and closed (each at its welcome) in %.2fs\n", s.byes, n, connected.Seconds())
		s.mu.Unlock()
	} else {
		up := s.waitUp(ctx, n, 5*time.Minute)
		connected = time.Since(t0)
		s.printf("connect              %d of %d users up in %.2fs\n", up, n, connected.Seconds())
		t1 = time.Now()
		s.closeClients(ctx, time.Minute)
		closed = time.Since(t1)
		s.printf("close                all closed in %.2fs\n", closed.Seconds())
	}
	s.set("clients", n)
	s.set("connectSeconds", connected.Seconds())
	s.set("closeSeconds", closed.Seconds())
	// Wait (bounded) until every watcher holds every user offline.
	deadline := time.Now().Add(s.o.grace + time.Minute)
	allOff := -1.0
	for time.Now().Before(deadline) && sleepCtx(ctx, 200*time.Millisecond) {
		off := true
		for _, w := range s.watchers {
			w.mu.Lock()
			for _, u := range users {
				if w.book[u].Online || w.book[u].UserID == "" {
					off = false
					break
				}
			}
			w.mu.Unlock()
			if !off {
				break
			}
		}
		if off {
			allOff = time.Since(t1).Seconds()
			break
		}
	}
	sr := stopSampling()
	if allOff >= 0 {
		s.printf("watchers             every watcher holds every user offline %.2fs after the close began\n", allOff)
	} else {
		s.printf("watchers             NOT every watcher holds every user offline %s after the close\n", s.o.grace+time.Minute)
	}
	s.set("watchersAllOfflineSeconds", allOff)
	events, cuts, reconnects, closes := s.watcherTotals()
	s.printf("watchers             %d watchers (%d connections each): %d events, %d connections cut with 1008 [target 0], %d reconnects %v\n",
		len(s.watchers), (n+999)/1000, events, cuts, reconnects, closes)
	s.set("watcherEvents", events)
	s.set("watcherCuts", cuts)
	s.set("watcherCloses", closes)
	drops, ccuts, codes := s.clientCloses(t0, t1)
	s.printf("client drops         %d before the close %v (%d cut)\n", drops, codes, ccuts)
	s.printf("load                 %s\n", sr)
	s.set("load", sr)
	want := make(map[string]expectation, n)
	for _, u := range users {
		want[u] = expectation{online: false, connections: 0}
	}
	s.settleTruth(ctx, want, s.o.truthWait)
	return nil
}

// stormDefaults fills the settings left at zero with the scenario's.
func stormDefaults(o *options) {
	mass := o.storm == "mass-disconnect"
	if o.stormClients == 0 {
		switch o.storm {
		case "failover":
			o.stormClients = 10000
		case "mass-disconnect":
			o.stormClients = 1000
		default:
			o.stormClients = 15000
		}
	}
	if o.watchersN == 0 {
		o.watchersN = 50
		if mass || o.storm == "failover" {
			o.watchersN = 10
		}
	}
	if o.grace < 0 {
		o.grace = 5 * time.Second
		if mass {
			o.grace = 0
		}
	}
	if mass {
		o.dialers = max(o.dialers, min(o.perProcess, o.stormClients)) // all at once
	}
}
