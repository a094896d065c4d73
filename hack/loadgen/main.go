// Command loadgen puts load on presence gateways and measures them.
//
// It opens N WebSocket connections spread over one or more gateways, keeps
// them with "ping", and reports: the connect rate; the gateways' RSS per
// connection and CPU while idle (from /proc/<pid> of the gateway pids
// given); the Redis Cluster's commands per second and per connection per
// minute while idle (INFO's total_commands_processed before/after, summed
// over the nodes, which counts the commands run inside Lua scripts too);
// and the cross-replica propagation latency p50/p99 of status changes made
// on the first gateway and watched on the second, at a given event rate.
//
// A process may hold at most 20,000 open files, so the connections are
// spread over worker processes (this same binary with -worker) of at most
// -per-process connections each. Each connection binds its own source
// address in 127.0.0.0/8, so the 64k ephemeral ports of one address are no
// limit.
//
//	go run ./hack/loadgen -gateways ws://127.0.0.1:8081,ws://127.0.0.1:8082 \
//	  -pids 1234,1235 -redis 127.0.0.1:7600,...,127.0.0.1:7605 \
//	  -conns 2000 -idle 60s -rate 1000 -latency 10s
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/procfs"
	"github.com/redis/go-redis/v9"

	"github.com/presencekit/presence-operator/client"
)

type options struct {
	gateways   []string
	pids       []int
	redisNodes []string
	conns      int
	perProcess int
	dialers    int
	ping       time.Duration
	settle     time.Duration
	idle       time.Duration
	rate       int
	latency    time.Duration
	actors     int
	watchers   int
	prefix     string
	jsonOut    bool
	// worker mode
	worker   bool
	workerID int
	offset   int
	// storm scenarios (storm.go)
	storm          string
	stormWorker    bool
	stormClients   int
	stormDeadline  time.Duration
	stormWait      time.Duration
	truthWait      time.Duration
	termWait       time.Duration
	maxTries       int
	backoffBase    time.Duration
	backoffCap     time.Duration
	gatewayBin     string
	gatewaysN      int
	gatewayEnv     string
	wsPortBase     int
	stormOut       string
	grace          time.Duration
	watchersN      int
	watchCount     int
	probers        int
	redisScript    string
	closeOnWelcome bool
}

func main() {
	var o options
	var gws, pids, nodes string
	flag.StringVar(&gws, "gateways", "ws://127.0.0.1:8080", "comma list of gateway WebSocket base URLs")
	flag.StringVar(&pids, "pids", "", "comma list of gateway process ids, for RSS and CPU (from /proc)")
	flag.StringVar(&nodes, "redis", "", "comma list of the Redis Cluster's nodes (all six), for INFO")
	flag.IntVar(&o.conns, "conns", 1000, "idle connections, spread round-robin over the gateways")
	flag.IntVar(&o.perProcess, "per-process", 9000, "connections per worker process (each process may hold at most 20,000 files)")
	flag.IntVar(&o.dialers, "dialers", 64, "concurrent dials per worker")
	flag.DurationVar(&o.ping, "ping", 20*time.Second, "keep-alive ping interval per connection")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait after connecting before measuring")
	flag.DurationVar(&o.idle, "idle", 60*time.Second, "idle measurement window (CPU, Redis commands)")
	flag.IntVar(&o.rate, "rate", 1000, "status changes per second in the latency phase (0: skip it)")
	flag.DurationVar(&o.latency, "latency", 10*time.Second, "length of the latency phase")
	flag.IntVar(&o.actors, "actors", 100, "users changing status in the latency phase (on the first gateway)")
	flag.IntVar(&o.watchers, "watchers", 2, "clients watching every actor (on the second gateway)")
	flag.StringVar(&o.prefix, "prefix", "lg", "user id prefix")
	flag.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	flag.BoolVar(&o.worker, "worker", false, "internal: run as a worker process")
	flag.IntVar(&o.workerID, "worker-id", 0, "internal")
	flag.IntVar(&o.offset, "offset", 0, "internal: index of the worker's first connection")
	flag.StringVar(&o.storm, "storm", "", "run a storm scenario: replica-loss, rolling-restart, failover, mass-disconnect (see storm.go)")
	flag.BoolVar(&o.stormWorker, "storm-worker", false, "internal: run as a storm worker process")
	flag.IntVar(&o.stormClients, "clients", 0, "storm: clients in all (default: replica-loss and rolling-restart 15000, failover 10000, mass-disconnect 1000)")
	flag.DurationVar(&o.stormDeadline, "storm-deadline", 20*time.Minute, "storm: the whole run ends by then")
	flag.DurationVar(&o.stormWait, "storm-wait", 2*time.Minute, "storm: how long to wait for the clients to be back")
	flag.DurationVar(&o.truthWait, "truth-wait", 90*time.Second, "storm: how long the final check waits for the presence to match (a killed gateway's connections go with its lease, PRESENCE_TTL)")
	flag.DurationVar(&o.termWait, "term-wait", 60*time.Second, "storm: how long a SIGTERMed gateway has to exit before SIGKILL")
	flag.IntVar(&o.maxTries, "max-tries", 40, "storm: a client gives up after this many failed attempts in a row")
	flag.DurationVar(&o.backoffBase, "backoff-base", 500*time.Millisecond, "storm: reconnect backoff base (the demo client's)")
	flag.DurationVar(&o.backoffCap, "backoff-cap", 30*time.Second, "storm: reconnect backoff cap (the demo client's)")
	flag.StringVar(&o.gatewayBin, "gateway-bin", "bin/presence-gateway", "storm: the presence-gateway binary")
	flag.IntVar(&o.gatewaysN, "gateway-count", 3, "storm: gateway processes")
	flag.StringVar(&o.gatewayEnv, "gateway-env", "", "storm: extra gateway settings, comma list of NAME=value")
	flag.IntVar(&o.wsPortBase, "ws-port-base", 18180, "storm: gateway i listens on this+i, its metrics on this+1000+i")
	flag.StringVar(&o.stormOut, "out", "/tmp/presencekit-storm", "storm: gateway logs go here")
	flag.DurationVar(&o.grace, "grace", -1, "storm: the gateways' OFFLINE_GRACE (default 5s; mass-disconnect 0s)")
	flag.IntVar(&o.watchersN, "watcher-count", 0, "storm: watchers (default 50; failover and mass-disconnect 10)")
	flag.IntVar(&o.watchCount, "watch", 1000, "storm: users each watcher watches (mass-disconnect: all)")
	flag.IntVar(&o.probers, "probers", 3, "storm failover: status probers on the shard under test (plus one on another shard)")
	flag.StringVar(&o.redisScript, "redis-script", "hack/redis-cluster.sh", "storm failover: the script with stop-node/start-node")
	flag.BoolVar(&o.closeOnWelcome, "close-on-welcome", false, "storm mass-disconnect: each user closes as soon as it is welcomed (connect and close in one burst)")
	flag.Parse()
	o.gateways = splitList(gws)
	o.redisNodes = splitList(nodes)
	for _, p := range splitList(pids) {
		n, err := strconv.Atoi(p)
		if err != nil {
			log.Fatalf("-pids entry %q: not a number", p)
		}
		o.pids = append(o.pids, n)
	}
	if len(o.gateways) == 0 {
		log.Fatal("-gateways is empty")
	}
	if o.perProcess < 1 || o.perProcess > 18000 {
		log.Fatalf("-per-process %d: must be 1..18000 (20,000 open files per process)", o.perProcess)
	}
	if o.stormWorker {
		if err := runStormWorker(o); err != nil {
			log.Fatal(err)
		}
		return
	}
	if o.storm != "" {
		stormDefaults(&o)
		if err := runStorm(o); err != nil {
			log.Fatal(err)
		}
		return
	}
	if o.worker {
		if err := runWorker(o); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := runMain(o); err != nil {
		log.Fatal(err)
	}
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// sourceAddr spreads connections over 127.0.0.0/8: worker w, connection i.
func sourceAddr(w, i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, byte(10+w), byte(i/250), byte(i%250+1))}
}

// sourceClient is an HTTP client whose connections come from src.
func sourceClient(src *net.TCPAddr) *http.Client {
	d := &net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// connect opens one connection of the Go client from src, keeping it alive
// with a ping every ping. It makes one attempt, bounded by 15s, so that
// every failed connect is counted as one.
func connect(ctx context.Context, src *net.TCPAddr, base, userID string, ping time.Duration, events bool) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	o := client.Options{URL: base, UserID: userID, DialAttempts: 1, PingInterval: ping,
		DialOptions: &websocket.DialOptions{HTTPClient: sourceClient(src)}, DiscardEvents: !events}
	if events {
		o.EventBuffer = 1 << 14 // a watcher's events are timed on arrival: never hold the reader back
	}
	c, err := client.Dial(ctx, o)
	var refused *client.Error
	if errors.As(err, &refused) && refused.HTTPStatus != 0 {
		return nil, &refusedError{fmt.Sprintf("%d %s", refused.HTTPStatus, refused.Code)}
	}
	return c, err
}

// dial opens one raw WebSocket connection from src and reads the welcome:
// the storm clients' (stormclient.go), which time each attempt and close.
func dial(ctx context.Context, src *net.TCPAddr, base, userID string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, base+"/?userId="+userID, &websocket.DialOptions{HTTPClient: sourceClient(src)})
	var refusal string // the gateway's {"error":"<code>"} of a refused upgrade
	if resp != nil && resp.Body != nil {
		if err != nil {
			var body struct {
				Error string `json:"error"`
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			if json.Unmarshal(b, &body) == nil && body.Error != "" {
				refusal = fmt.Sprintf("%d %s", resp.StatusCode, body.Error)
			}
		}
		_ = resp.Body.Close()
	}
	if err != nil {
		if refusal != "" {
			return nil, &refusedError{refusal}
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	_, b, err := c.Read(ctx)
	if err != nil {
		_ = c.CloseNow()
		return nil, fmt.Errorf("welcome: %w", err)
	}
	if !strings.Contains(string(b), `"welcome"`) {
		_ = c.CloseNow()
		return nil, fmt.Errorf("first frame %q, want the welcome", b)
	}
	return c, nil
}

// refusedError is an upgrade the gateway refused: "<status> <error code>".
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return "refused: " + e.reason }

// ---- worker: holds idle connections until stdin closes ----

func runWorker(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	// Each dialer writes its own indices; they are read once all are done.
	conns := make([]*client.Client, o.conns)
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()

	// Each client pings every o.ping from its welcome on, not once every
	// connection is dialed: when connecting takes longer than IDLE_TIMEOUT
	// (a loaded machine), the first connections would otherwise be cut as
	// idle before their first ping, and the idle window would measure
	// their removal.
	var failed atomic.Int64
	var firstErr atomic.Value
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range o.dialers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= o.conns {
					return
				}
				g := o.gateways[(o.offset+i)%len(o.gateways)]
				id := fmt.Sprintf("%s-w%d-%d", o.prefix, o.workerID, i)
				c, err := connect(ctx, sourceAddr(o.workerID, i), g, id, o.ping, false)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	fe, _ := firstErr.Load().(string)
	rep, _ := json.Marshal(map[string]any{"connected": int64(o.conns) - failed.Load(), "failed": failed.Load(),
		"seconds": took.Seconds(), "firstError": fe})
	fmt.Println(string(rep))

	<-done
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
	return nil
}

// ---- main: spawn workers, measure ----

type workerReport struct {
	Connected  int64   `json:"connected"`
	Failed     int64   `json:"failed"`
	Seconds    float64 `json:"seconds"`
	FirstError string  `json:"firstError"`
}

type procSample struct {
	rssKB      int64
	cpuSeconds float64 // user + system
}

// sampleProc reads a gateway's VmRSS (/proc/<pid>/status) and CPU time
// (/proc/<pid>/stat) with procfs.
func sampleProc(pid int) (procSample, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procSample{}, err
	}
	status, err := p.NewStatus()
	if err != nil {
		return procSample{}, err
	}
	stat, err := p.Stat()
	if err != nil {
		return procSample{}, err
	}
	return procSample{rssKB: int64(status.VmRSS >> 10), cpuSeconds: stat.CPUTime()}, nil
}

// redisCounts are INFO's counters summed over the nodes.
type redisCounts struct {
	all, masters int64            // total_commands_processed, all nodes / masters only
	perCommand   map[string]int64 // commandstats calls, masters only
}

// redisTotal reads the counters. Masters and replicas are told apart, since
// a replica executes again every write its master replicates to it: the
// clients' commands are the masters' count.
func redisTotal(ctx context.Context, nodes []string) (redisCounts, error) {
	rc := redisCounts{perCommand: map[string]int64{}}
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n, DialTimeout: 2 * time.Second})
		info, err := c.Info(ctx, "replication", "stats", "commandstats").Result()
		_ = c.Close()
		if err != nil {
			return rc, fmt.Errorf("INFO on %s: %w", n, err)
		}
		master := strings.Contains(info, "role:master")
		for _, line := range strings.Split(info, "\n") {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
				x, _ := strconv.ParseInt(v, 10, 64)
				rc.all += x
				if master {
					rc.masters += x
				}
			}
			if rest, ok := strings.CutPrefix(line, "cmdstat_"); ok && master {
				name, vals, _ := strings.Cut(rest, ":")
				for _, kv := range strings.Split(vals, ",") {
					if v, ok := strings.CutPrefix(kv, "calls="); ok {
						x, _ := strconv.ParseInt(v, 10, 64)
						rc.perCommand[name] += x
					}
				}
			}
		}
	}
	return rc, nil
}

type report struct {
	Gateways           []string           `json:"gateways"`
	Connections        int64              `json:"connections"`
	Failed             int64              `json:"failed"`
	ConnectSeconds     float64            `json:"connectSeconds"`
	ConnectPerSecond   float64            `json:"connectPerSecond"`
	RSSPerConnKB       map[int]float64    `json:"rssPerConnKB,omitempty"`
	RSSBeforeKB        map[int]int64      `json:"rssBeforeKB,omitempty"`
	RSSAfterKB         map[int]int64      `json:"rssAfterKB,omitempty"`
	IdleCPUPercent     map[int]float64    `json:"idleCpuPercentOfCore,omitempty"`
	IdleSeconds        float64            `json:"idleSeconds"`
	RedisCmdsPerSec    float64            `json:"redisCommandsPerSecond"`
	RedisAllPerSec     float64            `json:"redisCommandsPerSecondAllNodes"`
	GatewayCmdsConnMin float64            `json:"gatewayCommandsPerConnPerMinute"`
	RedisCmdsConnMin   float64            `json:"redisCommandsPerConnPerMinute"`
	RedisTopCommands   map[string]float64 `json:"redisTopCommandsPerSecond,omitempty"`
	EventRate          int                `json:"eventRate"`
	EventsSent         int64              `json:"eventsSent"`
	EventsReceived     int64              `json:"eventsReceived"`
	LatencyP50Ms       float64            `json:"latencyP50Ms"`
	LatencyP99Ms       float64            `json:"latencyP99Ms"`
	LatencyMaxMs       float64            `json:"latencyMaxMs"`
	LatencyIntervalMs  float64            `json:"-"`
}

func runMain(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := report{Gateways: o.gateways, RSSPerConnKB: map[int]float64{}, RSSBeforeKB: map[int]int64{},
		RSSAfterKB: map[int]int64{}, IdleCPUPercent: map[int]float64{}, EventRate: o.rate}

	before := map[int]procSample{}
	for _, pid := range o.pids {
		s, err := sampleProc(pid)
		if err != nil {
			return fmt.Errorf("-pids %d: %w", pid, err)
		}
		before[pid] = s
		rep.RSSBeforeKB[pid] = s.rssKB
	}

	// Workers.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	type worker struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
	}
	var workers []worker
	defer func() {
		for _, w := range workers {
			_ = w.stdin.Close()
			done := make(chan struct{})
			go func() { _ = w.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = w.cmd.Process.Kill()
			}
		}
	}()
	var reports []chan workerReport
	for wi, off := 0, 0; off < o.conns; wi, off = wi+1, off+o.perProcess {
		n := min(o.perProcess, o.conns-off)
		cmd := exec.Command(self, "-worker", "-worker-id", strconv.Itoa(wi), "-offset", strconv.Itoa(off),
			"-conns", strconv.Itoa(n), "-gateways", strings.Join(o.gateways, ","), "-prefix", o.prefix,
			"-ping", o.ping.String(), "-dialers", strconv.Itoa(o.dialers), "-per-process", strconv.Itoa(o.perProcess))
		cmd.Stderr = os.Stderr
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
		workers = append(workers, worker{cmd, stdin})
		ch := make(chan workerReport, 1)
		reports = append(reports, ch)
		go func() {
			var r workerReport
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err == nil {
				err = json.Unmarshal([]byte(line), &r)
			}
			if err != nil {
				r.FirstError = "worker report: " + err.Error()
			}
			ch <- r
			_, _ = io.Copy(io.Discard, stdout)
		}()
	}
	for i, ch := range reports {
		select {
		case r := <-ch:
			rep.Connections += r.Connected
			rep.Failed += r.Failed
			rep.ConnectSeconds = max(rep.ConnectSeconds, r.Seconds)
			if r.FirstError != "" {
				log.Printf("worker %d: %d failed, first error: %s", i, r.Failed, r.FirstError)
			}
		case <-time.After(10 * time.Minute):
			return errors.New("workers did not report within 10 minutes")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if rep.ConnectSeconds > 0 {
		rep.ConnectPerSecond = float64(rep.Connections) / rep.ConnectSeconds
	}
	log.Printf("%d connections in %.1fs (%.0f/s), %d failed", rep.Connections, rep.ConnectSeconds, rep.ConnectPerSecond, rep.Failed)

	sleep(ctx, o.settle)
	perGateway := float64(rep.Connections) / float64(len(o.gateways))
	for _, pid := range o.pids {
		s, err := sampleProc(pid)
		if err != nil {
			return err
		}
		rep.RSSAfterKB[pid] = s.rssKB
		if perGateway > 0 {
			rep.RSSPerConnKB[pid] = float64(s.rssKB-before[pid].rssKB) / perGateway
		}
	}

	// Idle window: CPU of each gateway and Redis commands.
	idleStart := map[int]procSample{}
	for _, pid := range o.pids {
		idleStart[pid], _ = sampleProc(pid)
	}
	var r0 redisCounts
	if len(o.redisNodes) > 0 {
		if r0, err = redisTotal(ctx, o.redisNodes); err != nil {
			return err
		}
	}
	t0 := time.Now()
	log.Printf("idle window %s", o.idle)
	sleep(ctx, o.idle)
	el := time.Since(t0)
	rep.IdleSeconds = el.Seconds()
	for _, pid := range o.pids {
		s, err := sampleProc(pid)
		if err != nil {
			return err
		}
		rep.IdleCPUPercent[pid] = 100 * (s.cpuSeconds - idleStart[pid].cpuSeconds) / el.Seconds()
	}
	if len(o.redisNodes) > 0 {
		r1, err := redisTotal(ctx, o.redisNodes)
		if err != nil {
			return err
		}
		// Minus the INFO calls themselves: one per node per sample.
		rep.RedisCmdsPerSec = float64(r1.masters-r0.masters-3) / el.Seconds()
		rep.RedisAllPerSec = float64(r1.all-r0.all-int64(len(o.redisNodes))) / el.Seconds()
		if rep.Connections > 0 {
			rep.RedisCmdsConnMin = rep.RedisCmdsPerSec * 60 / float64(rep.Connections)
		}
		rep.RedisTopCommands = map[string]float64{}
		// What the gateways sent: the masters' count without the replicas'
		// REPLCONF ACKs and our INFO calls.
		own := float64(r1.masters-r0.masters) - float64(r1.perCommand["replconf"]-r0.perCommand["replconf"]) -
			float64(r1.perCommand["info"]-r0.perCommand["info"])
		if rep.Connections > 0 {
			rep.GatewayCmdsConnMin = own / el.Seconds() * 60 / float64(rep.Connections)
		}
		for k, v := range r1.perCommand {
			if d := float64(v-r0.perCommand[k]) / el.Seconds(); d >= 0.05 {
				rep.RedisTopCommands[k] = d
			}
		}
	}

	if o.rate > 0 && len(o.gateways) > 0 {
		if err := latencyPhase(ctx, o, &rep); err != nil {
			return err
		}
	}
	printReport(o, rep)
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// latencyPhase: actors on the first gateway change status at o.rate per
// second in total, each change carrying its send time in the text;
// watchers on the second gateway (or the first, if only one) subscribe to
// every actor and time each presence event on arrival.
func latencyPhase(ctx context.Context, o options, rep *report) error {
	src, dst := o.gateways[0], o.gateways[len(o.gateways)-1]
	ids := make([]string, o.actors)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-actor-%d", o.prefix, i)
	}
	// Each actor sets the statuses it is given, one at a time, stamping each
	// with the time it is sent; the ticker below hands them out.
	var sent atomic.Int64
	var actorsDone sync.WaitGroup
	actors := make([]chan client.Status, o.actors)
	var stopOnce sync.Once
	stopActors := func() {
		stopOnce.Do(func() {
			for _, due := range actors {
				if due != nil {
					close(due)
				}
			}
			actorsDone.Wait()
		})
	}
	defer stopActors()
	for i := range actors {
		c, err := connect(ctx, sourceAddr(200, i), src, ids[i], o.ping, false)
		if err != nil {
			return fmt.Errorf("actor %d: %w", i, err)
		}
		defer func() { _ = c.Close() }()
		due := make(chan client.Status, 64)
		actors[i] = due
		actorsDone.Go(func() {
			for status := range due {
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if c.SetStatus(sctx, status, strconv.FormatInt(time.Now().UnixNano(), 10)) == nil {
					sent.Add(1)
				}
				cancel()
			}
		})
	}
	var mu sync.Mutex
	var lat []float64
	var received atomic.Int64
	var readers sync.WaitGroup
	defer readers.Wait() // after the watchers' Close (deferred later, run earlier)
	for w := range o.watchers {
		c, err := connect(ctx, sourceAddr(201, w), dst, fmt.Sprintf("%s-watcher-%d", o.prefix, w), o.ping, true)
		if err != nil {
			return fmt.Errorf("watcher %d: %w", w, err)
		}
		defer func() { _ = c.Close() }() // ends the reader below: Close closes Events
		readers.Go(func() {
			for ev := range c.Events() {
				now := time.Now().UnixNano()
				var u client.User
				switch ev := ev.(type) {
				case *client.PresenceEvent:
					if ev.Snapshot {
						continue
					}
					u = ev.User
				case *client.StaleEvent: // an older state, but a frame that came
					u = ev.User
				default:
					continue
				}
				if ts, err := strconv.ParseInt(u.Text, 10, 64); err == nil {
					received.Add(1)
					mu.Lock()
					lat = append(lat, float64(now-ts)/1e6)
					mu.Unlock()
				}
			}
		})
		subCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.Subscribe(subCtx, ids...)
		cancel()
		if err != nil {
			return fmt.Errorf("watcher %d: subscribe: %w", w, err)
		}
	}
	log.Printf("latency phase: %d events/s for %s, %d actors on %s, %d watchers on %s", o.rate, o.latency, o.actors, src, o.watchers, dst)
	// A ticker this fast would drop ticks; every 5ms, send what is due
	// to keep the average rate.
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	began := time.Now()
	end := began.Add(o.latency)
	statuses := []client.Status{client.StatusAway, client.StatusBusy}
	k := 0
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		due := int(time.Since(began).Seconds()*float64(o.rate)) - k
		for ; due > 0; due-- {
			select { // an actor 64 changes behind holds the ticker back
			case actors[k%len(actors)] <- statuses[(k/len(actors))%2]:
			case <-ctx.Done():
			}
			k++
		}
	}
	stopActors()
	sleep(ctx, 2*time.Second) // the last events in flight
	rep.EventsSent = sent.Load()
	rep.EventsReceived = received.Load()
	mu.Lock()
	defer mu.Unlock()
	sort.Float64s(lat)
	if len(lat) > 0 {
		rep.LatencyP50Ms = lat[len(lat)*50/100]
		rep.LatencyP99Ms = lat[min(len(lat)-1, len(lat)*99/100)]
		rep.LatencyMaxMs = lat[len(lat)-1]
	}
	return nil
}

func printReport(o options, r report) {
	if o.jsonOut {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Println(string(b))
		return
	}
	fmt.Printf("connections        %d on %d gateway(s) (%d failed)\n", r.Connections, len(r.Gateways), r.Failed)
	fmt.Printf("connect rate       %.0f/s (%.1fs)\n", r.ConnectPerSecond, r.ConnectSeconds)
	for _, pid := range o.pids {
		fmt.Printf("gateway pid %-6d RSS %d -> %d KB: %.1f KB per idle connection; idle CPU %.2f%% of a core\n",
			pid, r.RSSBeforeKB[pid], r.RSSAfterKB[pid], r.RSSPerConnKB[pid], r.IdleCPUPercent[pid])
	}
	if len(o.redisNodes) > 0 {
		fmt.Printf("redis masters      %.1f commands/s over %.0fs idle = %.3f per connection per minute (all six nodes, replication included: %.1f/s)\n",
			r.RedisCmdsPerSec, r.IdleSeconds, r.RedisCmdsConnMin, r.RedisAllPerSec)
		fmt.Printf("  sent by the gateways (masters' count minus replconf and info): %.3f per connection per minute\n", r.GatewayCmdsConnMin)
		keys := make([]string, 0, len(r.RedisTopCommands))
		for k := range r.RedisTopCommands {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return r.RedisTopCommands[keys[i]] > r.RedisTopCommands[keys[j]] })
		for _, k := range keys {
			fmt.Printf("  %-16s %.1f/s\n", k, r.RedisTopCommands[k])
		}
	}
	if r.EventRate > 0 {
		fmt.Printf("propagation        %d events/s: sent %d, received %d; p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
			r.EventRate, r.EventsSent, r.EventsReceived, r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs)
	}
}
