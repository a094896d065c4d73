package redisstore

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
	"github.com/presencekit/presence-operator/internal/redistest"
)

// testReplica is one store with its events, metrics and a running Run.
type testReplica struct {
	*Store
	ev     *presencetest.Recorder
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

type replicaOpts struct {
	ttl, hb, grace     time.Duration
	now                func() time.Time
	noRun              bool
	username, password string
}

func newReplica(t *testing.T, nodes []string, ns string, o replicaOpts) *testReplica {
	t.Helper()
	if o.ttl == 0 {
		o.ttl, o.hb = 2*time.Second, 400*time.Millisecond
	}
	ev := &presencetest.Recorder{}
	reg := prometheus.NewRegistry()
	s, err := New(Config{Nodes: nodes, Namespace: ns, ReplicaName: "t", Username: o.username, Password: o.password, Metrics: NewMetrics(reg)},
		presence.Options{TTL: o.ttl, Heartbeat: o.hb, OfflineGrace: o.grace, OnEvent: ev.Add, Now: o.now, Metrics: presence.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	r := &testReplica{Store: s, ev: ev, reg: reg}
	if !o.noRun {
		r.start()
	}
	t.Cleanup(func() {
		r.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return r
}

func (r *testReplica) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		_ = r.Run(ctx)
	}()
}

// stop ends Run (the replica "dies" without a word: nothing is removed).
func (r *testReplica) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
	}
	r.cancel = nil
}

func (r *testReplica) reaped() float64 { return testutil.ToFloat64(r.m.ReapedConnectionsTotal) }

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func getOne(t *testing.T, s presence.Store, id string) presence.User {
	t.Helper()
	us, err := s.Get(tctx(t), []string{id})
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return us[0]
}

// users returns n user ids spread over many slots.
func users(ns string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-u%03d", ns, i)
	}
	return out
}

// ownCluster is a six-node cluster on its own ports for the tests that
// break it (failover, full outage), so they cannot disturb other tests.
// It requires a password, so those tests also cover authentication (the
// client's and the subscriber's own AUTH, across reconnects).
type ownCluster struct {
	base     int
	script   string
	nodes    []string
	password string
	env      []string // more settings for hack/redis-cluster.sh
}

const ownClusterPassword = "presencekit-test"

var (
	ownOnce sync.Once
	own     *ownCluster
	ownErr  error
)

// clusterScript is the path of hack/redis-cluster.sh.
func clusterScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "hack", "redis-cluster.sh")
}

// disruptableCluster starts (once per test binary) the cluster on
// PRESENCE_TEST_REDIS_DISRUPT_BASE_PORT (default: free ports); TestMain
// stops it.
func disruptableCluster(t *testing.T) *ownCluster {
	t.Helper()
	testNodes(t) // same contract: the suite is meant to run under make test-redis
	ownOnce.Do(func() {
		base, err := redistest.FreeBase(clusterScript(), "PRESENCE_TEST_REDIS_DISRUPT_BASE_PORT")
		if err != nil {
			ownErr = err
			return
		}
		c := &ownCluster{base: base, script: clusterScript(), password: ownClusterPassword}
		for i := range 6 {
			c.nodes = append(c.nodes, fmt.Sprintf("127.0.0.1:%d", base+i))
		}
		own = c
		if out, err := c.run("up"); err != nil {
			ownErr = fmt.Errorf("hack/redis-cluster.sh up (base %d): %w\n%s", base, err, out)
		}
	})
	if ownErr != nil {
		t.Fatal(ownErr)
	}
	return own
}

func (c *ownCluster) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{c.script}, args...)...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("REDIS_CLUSTER_BASE_PORT=%d", c.base), "REDIS_CLUSTER_PASSWORD="+c.password)
	cmd.Env = append(cmd.Env, c.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *ownCluster) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatalf("redis-cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *ownCluster) cli(t *testing.T, port int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-a", c.password, "--no-auth-warning", "-p", fmt.Sprint(port)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli -p %d %v: %v\n%s", port, args, err, out)
	}
	return string(out)
}

// replication returns the Replication section of the node's INFO.
func (c *ownCluster) replication(t *testing.T, port int) map[string]string {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: c.password})
	defer rc.Close()
	info, err := rc.InfoMap(tctx(t), "replication").Result()
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	return info["Replication"]
}

func TestMain(m *testing.M) {
	code := m.Run()
	if own != nil {
		if out, err := own.run("down"); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the test's own cluster: %v\n%s", err, out)
		}
	}
	os.Exit(code)
}

// newTestMetrics returns both sets of series a Store needs, on a registry of
// their own.
func newTestMetrics() (*Metrics, *presence.Metrics) {
	reg := prometheus.NewRegistry()
	return NewMetrics(reg), presence.NewMetrics(reg)
}
