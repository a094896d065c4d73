package main

// What the storm scenarios measure besides the clients: gateway processes
// (start, SIGKILL, SIGTERM, CPU from /proc), the Redis Cluster's commands
// per second, and the presence state the gateways report.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"github.com/redis/go-redis/v9"

	"github.com/presencekit/presence-operator/internal/gatewayproc"
)

// ---- gateway processes ----

type gwProc struct {
	index   int
	port    int
	metrics int
	env     []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func (g *gwProc) url() string { return "ws://127.0.0.1:" + strconv.Itoa(g.port) }
func (g *gwProc) api() string { return "http://127.0.0.1:" + strconv.Itoa(g.port) }

func (g *gwProc) pid() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil || g.cmd.Process == nil {
		return 0
	}
	return g.cmd.Process.Pid
}

// start runs the gateway binary and waits (bounded) until /readyz is 200.
// A port something else listens on is an error: a gateway left over from
// another run would answer the readiness check for ours.
func (g *gwProc) start(bin string, within time.Duration) error {
	for _, port := range []int{g.port, g.metrics} {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			_ = c.Close()
			return fmt.Errorf("port %d is already in use (a gateway left from another run?)", port)
		}
	}
	lf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"WS_PORT=" + strconv.Itoa(g.port),
		"METRICS_PORT=" + strconv.Itoa(g.metrics), "LOG_LEVEL=warn"}, g.env...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphan if loadgen dies
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = lf.Close(); close(exited) }()
	g.mu.Lock()
	g.cmd, g.exited = cmd, exited
	g.mu.Unlock()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("gateway %d exited at start (log %s)", g.index, g.logPath)
		default:
		}
		if gatewayproc.Status(g.api()+"/readyz") == http.StatusOK {
			select {
			case <-exited:
				return fmt.Errorf("gateway %d exited at start (log %s)", g.index, g.logPath)
			default:
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("gateway %d not ready within %s (log %s)", g.index, within, g.logPath)
}

// signal sends sig and waits (bounded) for the process to end; after
// within it is killed.
func (g *gwProc) signal(sig syscall.Signal, within time.Duration) {
	g.mu.Lock()
	cmd, exited := g.cmd, g.exited
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func startGateways(o options, n int, env []string) ([]*gwProc, error) {
	if err := os.MkdirAll(o.stormOut, 0o755); err != nil {
		return nil, err
	}
	gws := make([]*gwProc, n)
	for i := range gws {
		gws[i] = &gwProc{index: i, port: o.wsPortBase + i, metrics: o.wsPortBase + 1000 + i, env: env,
			logPath: filepath.Join(o.stormOut, fmt.Sprintf("gateway-%d.log", i))}
		_ = os.Remove(gws[i].logPath)
		if err := gws[i].start(o.gatewayBin, 30*time.Second); err != nil {
			return gws, err
		}
	}
	return gws, nil
}

// ---- CPU of the gateways and Redis commands per second, sampled each second ----

type sampler struct {
	gws   []*gwProc
	nodes []*redis.Client

	mu       sync.Mutex
	cpuPeak  []float64 // % of a core over one second, per gateway
	cpuSum   []float64 // seconds of CPU in the window, per gateway
	cmdPeak  float64   // masters' commands per second
	cmdTotal float64
	seconds  float64
}

func newSampler(gws []*gwProc, nodes []string) *sampler {
	s := &sampler{gws: gws, cpuPeak: make([]float64, len(gws)), cpuSum: make([]float64, len(gws))}
	for _, n := range nodes {
		s.nodes = append(s.nodes, redis.NewClient(&redis.Options{Addr: n, DialTimeout: time.Second,
			ReadTimeout: time.Second, MaxRetries: -1, PoolSize: 1}))
	}
	return s
}

func (s *sampler) close() {
	for _, c := range s.nodes {
		_ = c.Close()
	}
}

func cpuSeconds(pid int) (float64, bool) {
	if pid == 0 {
		return 0, false
	}
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, false
	}
	st, err := p.Stat()
	if err != nil {
		return 0, false
	}
	return st.CPUTime(), true
}

// commands is each reachable node's total_commands_processed and whether it is a master.
func (s *sampler) commands(ctx context.Context) map[int]struct {
	n      int64
	master bool
} {
	out := map[int]struct {
		n      int64
		master bool
	}{}
	for i, c := range s.nodes {
		info, err := c.InfoMap(ctx, "stats", "replication").Result()
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(info["Stats"]["total_commands_processed"]), 10, 64)
		if err != nil {
			continue
		}
		out[i] = struct {
			n      int64
			master bool
		}{n, strings.TrimSpace(info["Replication"]["role"]) == "master"}
	}
	return out
}

// run samples every second until ctx ends. The commands per second count the
// masters only (a replica re-executes what its master sends it); a node
// restarted in between (counter went down) is skipped for that second.
func (s *sampler) run(ctx context.Context) {
	type cpu struct {
		pid int
		s   float64
	}
	prevCPU := make([]cpu, len(s.gws))
	for i, g := range s.gws {
		prevCPU[i].pid = g.pid()
		prevCPU[i].s, _ = cpuSeconds(prevCPU[i].pid)
	}
	prevCmd := s.commands(ctx)
	prevT := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for last := false; !last; {
		select {
		case <-ctx.Done():
			last = true // one more sample for the part-second since the previous
		case <-t.C:
		}
		now := time.Now()
		el := now.Sub(prevT).Seconds()
		if el < 0.05 {
			continue
		}
		prevT = now
		cur := s.commands(context.WithoutCancel(ctx))
		var d int64
		for i, c := range cur {
			if p, ok := prevCmd[i]; ok && c.master && c.n >= p.n {
				d += c.n - p.n - 1 // minus our own INFO
			}
		}
		prevCmd = cur
		s.mu.Lock()
		s.seconds += el
		s.cmdTotal += float64(d)
		// A rate over less than half a second (the last sample) is too noisy for the peak.
		if el >= 0.5 {
			s.cmdPeak = max(s.cmdPeak, float64(d)/el)
		}
		for i, g := range s.gws {
			pid := g.pid()
			c, ok := cpuSeconds(pid)
			if ok && pid == prevCPU[i].pid {
				used := c - prevCPU[i].s
				s.cpuSum[i] += used
				if el >= 0.5 {
					s.cpuPeak[i] = max(s.cpuPeak[i], 100*used/el)
				}
			}
			prevCPU[i] = cpu{pid, c}
		}
		s.mu.Unlock()
	}
}

// window starts sampling; the returned function stops it and reports.
func (s *sampler) window(ctx context.Context) func() samplerReport {
	ctx, cancel := context.WithCancel(ctx)
	*s = sampler{gws: s.gws, nodes: s.nodes, cpuPeak: make([]float64, len(s.gws)), cpuSum: make([]float64, len(s.gws))}
	done := make(chan struct{})
	go func() { s.run(ctx); close(done) }()
	return func() samplerReport {
		cancel()
		<-done
		s.mu.Lock()
		defer s.mu.Unlock()
		r := samplerReport{Seconds: s.seconds, RedisPeak: s.cmdPeak}
		if s.seconds > 0 {
			r.RedisMean = s.cmdTotal / s.seconds
		}
		for i := range s.gws {
			r.CPUPeak = append(r.CPUPeak, s.cpuPeak[i])
			if s.seconds > 0 {
				r.CPUMean = append(r.CPUMean, 100*s.cpuSum[i]/s.seconds)
			}
		}
		return r
	}
}

type samplerReport struct {
	Seconds   float64   `json:"seconds"`
	RedisPeak float64   `json:"redisCommandsPerSecondPeak"`
	RedisMean float64   `json:"redisCommandsPerSecondMean"`
	CPUPeak   []float64 `json:"gatewayCpuPeakPercent"`
	CPUMean   []float64 `json:"gatewayCpuMeanPercent"`
}

func (r samplerReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "redis (masters) commands/s: peak %.0f, mean %.0f over %.0fs; gateway CPU %% of a core (peak/mean):",
		r.RedisPeak, r.RedisMean, r.Seconds)
	for i := range r.CPUPeak {
		m := 0.0
		if i < len(r.CPUMean) {
			m = r.CPUMean[i]
		}
		fmt.Fprintf(&b, " gw%d %.1f/%.1f", i, r.CPUPeak[i], m)
	}
	return b.String()
}

// ---- the presence the gateways report ----

// fetchPresence asks /v1/presence for every user, 100 ids a request,
// rotating over the gateways given (bounded: one pass, 5 s per request).
func fetchPresence(ctx context.Context, apis []string, users []string) (map[string]presenceUser, error) {
	out := make(map[string]presenceUser, len(users))
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for k := 0; k*100 < len(users); k++ {
		part := users[k*100 : min(len(users), (k+1)*100)]
		api := apis[k%len(apis)]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			q := url.Values{}
			for _, u := range part {
				q.Add("userId", u)
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, api+"/v1/presence?"+q.Encode(), nil)
			resp, err := http.DefaultClient.Do(req)
			var body struct {
				Users []presenceUser `json:"users"`
			}
			if err == nil {
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("GET /v1/presence: %s", resp.Status)
				} else {
					err = json.NewDecoder(resp.Body).Decode(&body)
				}
				_ = resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			for _, u := range body.Users {
				out[u.UserID] = u
			}
		})
	}
	wg.Wait()
	return out, firstErr
}

// expectation is what loadgen knows a user's presence must be.
type expectation struct {
	online      bool
	status      string // "" = any
	text        string
	connections int // -1 = any
}

// compare counts the users whose reported presence differs from the
// expectation, and describes the first few.
func compare(got map[string]presenceUser, want map[string]expectation) (bad int, conns int, examples []string) {
	for u, e := range want {
		g, ok := got[u]
		wrong := !ok || g.Online != e.online || (e.status != "" && (g.Status != e.status || g.Text != e.text))
		if wrong {
			bad++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("%s: got online=%v status=%s text=%q conns=%d, want online=%v status=%s text=%q",
					u, g.Online, g.Status, g.Text, g.Connections, e.online, e.status, e.text))
			}
			continue
		}
		if e.connections >= 0 && g.Connections != e.connections {
			conns++
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("%s: connections %d, want %d", u, g.Connections, e.connections))
			}
		}
	}
	return bad, conns, examples
}

// truthCheck polls the presence until it matches want (state and
// connection counts) or within ends; it reports the last comparison and
// how long it took to match.
type truthReport struct {
	Users         int      `json:"users"`
	Wrong         int      `json:"wrongState"`       // online/status/text differ
	WrongConns    int      `json:"wrongConnections"` // state right, connection count not (yet)
	StateAfter    float64  `json:"stateMatchedAfterSeconds"`
	AllAfter      float64  `json:"allMatchedAfterSeconds"`
	Examples      []string `json:"examples,omitempty"`
	Err           string   `json:"error,omitempty"`
	present       map[string]presenceUser
	checkedWithin time.Duration
}

func truthCheck(ctx context.Context, apis []string, want map[string]expectation, within time.Duration) truthReport {
	users := make([]string, 0, len(want))
	for u := range want {
		users = append(users, u)
	}
	start := time.Now()
	r := truthReport{Users: len(users), StateAfter: -1, AllAfter: -1, checkedWithin: within}
	for pass := 0; pass < 1000; pass++ {
		got, err := fetchPresence(ctx, apis, users)
		r.present = got
		if err != nil {
			r.Err = err.Error()
		} else {
			r.Err = ""
		}
		r.Wrong, r.WrongConns, r.Examples = compare(got, want)
		el := time.Since(start).Seconds()
		if err == nil && r.Wrong == 0 && r.StateAfter < 0 {
			r.StateAfter = el
		}
		if err == nil && r.Wrong == 0 && r.WrongConns == 0 {
			r.AllAfter = el
			return r
		}
		if time.Since(start) > within || !sleepCtx(ctx, 2*time.Second) {
			return r
		}
	}
	return r
}

func (r truthReport) String() string {
	s := fmt.Sprintf("%d users: %d with a wrong state", r.Users, r.Wrong)
	if r.StateAfter >= 0 {
		s += fmt.Sprintf(" (state right after %.1fs)", r.StateAfter)
	}
	s += fmt.Sprintf(", %d with a wrong connection count", r.WrongConns)
	if r.AllAfter >= 0 {
		s += fmt.Sprintf(" (all right after %.1fs)", r.AllAfter)
	} else {
		s += fmt.Sprintf(" (still, after waiting %s)", r.checkedWithin)
	}
	if r.Err != "" {
		s += "; error: " + r.Err
	}
	for _, e := range r.Examples {
		s += "\n      e.g. " + e
	}
	return s
}

// watchersVsTruth compares every watcher's newest state of each watched
// user with the presence fetched from the gateways.
// wrong counts the pairs whose online, status or text differ; older the
// pairs whose state is right but whose version is not the gateways' (a
// later change, such as a connection count, never reached the watcher).
func watchersVsTruth(ws []*watcher, present map[string]presenceUser) (checked, wrong, older int, examples []string) {
	for _, w := range ws {
		w.mu.Lock()
		for _, u := range w.users {
			checked++
			got, ok := w.book[u]
			want := present[u]
			stateWrong := !ok || got.Online != want.Online || got.Status != want.Status || got.Text != want.Text
			if stateWrong {
				wrong++
			} else if got.Version != want.Version {
				older++
			}
			if (stateWrong || got.Version != want.Version) && len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("%s sees %s online=%v status=%s conns=%d v%d; gateways say online=%v status=%s conns=%d v%d",
					w.name, u, got.Online, got.Status, got.Connections, got.Version, want.Online, want.Status, want.Connections, want.Version))
			}
		}
		w.mu.Unlock()
	}
	return checked, wrong, older, examples
}
