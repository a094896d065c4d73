package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

func TestParseClusterInfo(t *testing.T) {
	g := NewWithT(t)
	info := "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_known_nodes:6\r\n"
	f := parseClusterInfo(info)
	g.Expect(f).To(HaveKeyWithValue("cluster_state", "ok"))
	g.Expect(f).To(HaveKeyWithValue("cluster_slots_ok", "16384"))
	g.Expect(f).To(HaveKeyWithValue("cluster_known_nodes", "6"))
}

func TestShardNodes(t *testing.T) {
	g := NewWithT(t)
	nodes := shardNodes([]redis.ClusterShard{
		{Nodes: []redis.Node{{Endpoint: "127.0.0.1", Port: 7000}, {Endpoint: "127.0.0.1", Port: 7004}}},
		{Nodes: []redis.Node{{Endpoint: "?", IP: "::1", Port: 7001}, {Endpoint: "127.0.0.1", Port: 7000}, {Endpoint: "gone"}}},
	}, false)
	g.Expect(nodes).To(Equal([]string{"127.0.0.1:7000", "127.0.0.1:7004", "[::1]:7001"}))

	// A TLS client dials the tls-port; a TLS-only node announces no other.
	shards := []redis.ClusterShard{{Nodes: []redis.Node{
		{Endpoint: "127.0.0.1", Port: 7000, TLSPort: 8000, Role: "master"},
		{Endpoint: "127.0.0.1", TLSPort: 8001, Role: "replica"},
	}}}
	g.Expect(shardNodes(shards, true)).To(Equal([]string{"127.0.0.1:8000", "127.0.0.1:8001"}))
	g.Expect(shardNodes(shards, false)).To(Equal([]string{"127.0.0.1:7000", "127.0.0.1:8001"}))
	masters, replicas := shardRoles(shards)
	g.Expect([]int{masters, replicas}).To(Equal([]int{1, 1}))
}

func TestClusterConditions(t *testing.T) {
	seeds := []string{"a:1", "b:2"}
	refused := errors.New("connection refused")
	tests := []struct {
		name         string
		h            clusterHealth
		wantReady    metav1.ConditionStatus
		wantReason   string
		wantDegraded string // reason of an explicit Degraded=True, "" for none
	}{
		{"unreachable", clusterHealth{seedErrors: map[string]error{"a:1": refused, "b:2": refused}}, metav1.ConditionFalse, presencev1alpha1.ReasonUnreachable, ""},
		{"auth", clusterHealth{seedErrors: map[string]error{"a:1": refused}, authFailed: true}, metav1.ConditionFalse, presencev1alpha1.ReasonInvalidSecret, ""},
		{"noperm", clusterHealth{seedErrors: map[string]error{"a:1": refused}, permissionDenied: true}, metav1.ConditionFalse, presencev1alpha1.ReasonInsufficientPermissions, ""},
		{"redis 6", clusterHealth{seedErrors: map[string]error{"a:1": refused}, tooOld: "a:1"}, metav1.ConditionFalse, presencev1alpha1.ReasonRedisVersionUnsupported, ""},
		{"down", clusterHealth{answered: "a:1", state: "fail", slotsOK: 10000}, metav1.ConditionFalse, presencev1alpha1.ReasonClusterDown, ""},
		{"uncovered", clusterHealth{answered: "a:1", state: "ok", slotsOK: 16000}, metav1.ConditionFalse, presencev1alpha1.ReasonSlotsUncovered, ""},
		{"ok", clusterHealth{answered: "a:1", state: "ok", slotsOK: 16384, nodes: []string{"a:1"}}, metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK, ""},
		{"ok but a seed is down", clusterHealth{answered: "b:2", state: "ok", slotsOK: 16384, seedErrors: map[string]error{"a:1": refused}},
			metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK, presencev1alpha1.ReasonSeedsUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ready, degraded := clusterConditions(seeds, "", tt.h)
			g.Expect(ready.status).To(Equal(tt.wantReady))
			g.Expect(ready.reason).To(Equal(tt.wantReason))
			if tt.wantDegraded == "" {
				g.Expect(degraded).To(BeNil())
			} else {
				g.Expect(degraded.reason).To(Equal(tt.wantDegraded))
			}
			if tt.h.seedErrors["a:1"] != nil {
				g.Expect(ready.message + messageOf(degraded)).To(ContainSubstring("a:1: connection refused"))
			}
		})
	}
}

func messageOf(c *conditionResult) string {
	if c == nil {
		return ""
	}
	return c.message
}

// TestCheckClusterClassifiesRedisRefusals checks the reasons a user reads
// for what a node answers: an ACL user without the rights is not "bad
// credentials", and a Redis 6 node is named as too old rather than as
// "no seed answered".
func TestCheckClusterClassifiesRedisRefusals(t *testing.T) {
	tests := []struct {
		name       string
		reply      func(cmd []string) string
		wantReason string
		wantText   string
	}{
		{
			name: "NOPERM",
			reply: func([]string) string {
				return "-NOPERM User presence has no permissions to run the 'cluster|info' command\r\n"
			},
			wantReason: presencev1alpha1.ReasonInsufficientPermissions,
			wantText:   "may not run CLUSTER INFO or CLUSTER SHARDS",
		},
		{
			name: "WRONGPASS",
			reply: func([]string) string {
				return "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
			},
			wantReason: presencev1alpha1.ReasonInvalidSecret,
			wantText:   "refused the credentials",
		},
		{
			name: "Redis 6 without CLUSTER SHARDS",
			reply: func(cmd []string) string {
				switch strings.Join(cmd, " ") {
				case "CLUSTER INFO":
					return respBulk(healthyClusterInfo)
				case "CLUSTER SHARDS":
					return "-ERR Unknown subcommand or wrong number of arguments for 'SHARDS'. Try CLUSTER HELP.\r\n"
				}
				return fakeUnknownCommand
			},
			wantReason: presencev1alpha1.ReasonRedisVersionUnsupported,
			wantText:   "Redis 7 or later is required",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			node := startFakeRedis(t, tt.reply)
			seeds := []string{node.addr}
			h := checkCluster(context.Background(), seeds, redisAccess{}, 5*time.Second)
			ready, _ := clusterConditions(seeds, "", h)
			g.Expect(ready.status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.reason).To(Equal(tt.wantReason))
			g.Expect(ready.message).To(And(ContainSubstring(tt.wantText), ContainSubstring(node.addr)))
		})
	}
}

// TestCheckClusterBlackholedNodeEndsWithTheTimeout: a node that accepts the
// connection and never answers ends the check with an error after the
// timeout, and a healthy seed beside it still makes the cluster Ready.
func TestCheckClusterBlackholedNodeEndsWithTheTimeout(t *testing.T) {
	g := NewWithT(t)
	blackhole := startFakeRedis(t, nil)
	healthy := startFakeRedis(t, func(cmd []string) string {
		switch strings.Join(cmd, " ") {
		case "CLUSTER INFO":
			return respBulk(healthyClusterInfo)
		case "CLUSTER SHARDS":
			return "*0\r\n" // no shard listed
		}
		return fakeUnknownCommand
	})
	seeds := []string{blackhole.addr, healthy.addr}
	h := checkCluster(context.Background(), seeds, redisAccess{}, 200*time.Millisecond)
	g.Expect(h.answered).To(Equal(healthy.addr))
	g.Expect(h.seedErrors).To(HaveKey(blackhole.addr))
	ready, degraded := clusterConditions(seeds, "", h)
	g.Expect(ready.reason).To(Equal(presencev1alpha1.ReasonClusterOK))
	g.Expect(degraded).NotTo(BeNil())
	g.Expect(degraded.message).To(ContainSubstring(blackhole.addr))
}

func TestHeartbeatDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		last *metav1.Time
		want bool
	}{
		{nil, true},
		{&metav1.Time{Time: now.Add(-time.Minute)}, false},
		{&metav1.Time{Time: now.Add(-5 * time.Minute)}, true},
	} {
		if got := heartbeatDue(tt.last, now, 5*time.Minute); got != tt.want {
			t.Errorf("heartbeatDue(%v) = %v, want %v", tt.last, got, tt.want)
		}
	}
}

// TestRedisClusterChangedIgnoresTheHeartbeat: a status write that only
// refreshes lastCheckTime does not wake the gateways of a shared cluster;
// any other change does.
func TestRedisClusterChangedIgnoresTheHeartbeat(t *testing.T) {
	old := &presencev1alpha1.RedisCluster{ObjectMeta: metav1.ObjectMeta{Generation: 1}}
	old.Status.ClusterState = "ok"
	old.Status.LastCheckTime = &metav1.Time{Time: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	p := RedisClusterChanged()
	for _, tt := range []struct {
		name   string
		mutate func(*presencev1alpha1.RedisCluster)
		want   bool
	}{
		{"heartbeat only", func(rc *presencev1alpha1.RedisCluster) { rc.Status.LastCheckTime = &metav1.Time{Time: time.Now()} }, false},
		{"state changed", func(rc *presencev1alpha1.RedisCluster) { rc.Status.ClusterState = "fail" }, true},
		{"spec changed", func(rc *presencev1alpha1.RedisCluster) { rc.Generation = 2 }, true},
	} {
		newer := old.DeepCopy()
		tt.mutate(newer)
		if got := p.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: newer}); got != tt.want {
			t.Errorf("%s: RedisClusterChanged = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestCheckSeedsAreTheGatewaysSeeds: the health check asks the seed nodes
// the gateways get, qualified with the RedisCluster's namespace, so that the
// README's short names ("redis-0.redis:6379") mean the same Redis to both
// (the operator runs in another namespace, whose DNS search path would
// resolve them elsewhere, or not at all). The e2e checks it end to end.
func TestCheckSeedsAreTheGatewaysSeeds(t *testing.T) {
	g := NewWithT(t)
	rc := &presencev1alpha1.RedisCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "chat", Name: "redis"},
		Spec: presencev1alpha1.RedisClusterSpec{External: &presencev1alpha1.ExternalRedisCluster{
			Nodes: []string{"redis-0.redis:6379", "redis:6379", "10.0.0.1:6379", "redis-1.redis.other.svc:6379"},
		}},
	}
	r := &RedisClusterReconciler{}
	seeds, problem, err := r.resolveSeeds(context.Background(), rc)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(problem).To(BeNil())
	g.Expect(seeds).To(Equal([]string{
		"redis-0.redis.chat.svc:6379", "redis.chat.svc:6379", "10.0.0.1:6379", "redis-1.redis.other.svc:6379",
	}))
	g.Expect(seeds).To(Equal(gwspecs.RedisNodes(rc)), "the gateways' seeds")
}
