package controllers

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	"github.com/presencekit/presence-operator/internal/needs"
	"github.com/presencekit/presence-operator/internal/redistest"
)

// requireRedisOnly is requireRedisCluster for the tests that talk to Redis
// without an API server.
func requireRedisOnly(t *testing.T) {
	t.Helper()
	for _, addr := range testRedisNodes {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			needs.Missing(t, fmt.Sprintf("needs a Redis Cluster, node %s unreachable (%v): run `make test-operator` (it starts one with `make redis-up`), or set PRESENCE_TEST_REDIS_NODES", addr, err))
		}
		_ = c.Close()
	}
}

// aclUser creates an ACL user with password "pw" and rules on every node
// of the test cluster (ACLs are per node), removed when the test ends.
func aclUser(t *testing.T, name, rules string) {
	t.Helper()
	for _, addr := range testRedisNodes {
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
		args := []any{"ACL", "SETUSER", name, "reset", "on", ">pw"}
		for _, r := range strings.Fields(rules) {
			args = append(args, r)
		}
		if err := c.Do(context.Background(), args...).Err(); err != nil {
			t.Fatalf("ACL SETUSER %s on %s: %v", name, addr, err)
		}
		_ = c.Close()
	}
	t.Cleanup(func() {
		for _, addr := range testRedisNodes {
			c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
			_ = c.Do(context.Background(), "ACL", "DELUSER", name).Err()
			_ = c.Close()
		}
	})
}

// TestCheckClusterACL: on the real cluster, the check finds exactly the
// gateways' commands, keys and channels an ACL user lacks, and a user with
// the documented rules is Ready. Every seed is asked, so a node whose ACL
// differs is found too.
func TestCheckClusterACL(t *testing.T) {
	requireRedisOnly(t)
	user := fmt.Sprintf("presencekit-test-%d", time.Now().UnixNano())
	tests := []struct {
		name        string
		rules       string
		wantMissing []string // empty: Ready
	}{
		{"the documented rules", redistest.DocumentedACLRules(t, "presence"), nil},
		{"everything", "~* &* +@all", nil},
		{"no sharded pub/sub, no HSET", "~presence:* &presence:* +@all -spublish -ssubscribe -hset",
			[]string{"HSET", "SPUBLISH", "SSUBSCRIBE"}},
		{"no scripts", "~presence:* &presence:* +@all -@scripting", []string{"EVAL", "EVALSHA"}},
		{"other keys", "~other:* &presence:* +@all", []string{"DEL (key " + aclProbeUserHash + ")", "EVAL (key " + aclProbeConns + ")",
			"EVALSHA (key " + aclProbeConns + ")", "HMGET (key " + aclProbeUserHash + ")", "HSET (key " + aclProbeUserHash + ")",
			"PEXPIRE (key " + aclProbeConns + ")", "SADD (key " + aclProbeIndex + ")", "SREM (key " + aclProbeIndex + ")",
			"SSCAN (key " + aclProbeIndex + ")", "ZADD (key " + aclProbeConns + ")", "ZADD (key " + aclProbeReplicas + ")",
			"ZRANGE (key " + aclProbeConns + ")", "ZRANGEBYSCORE (key " + aclProbeConns + ")", "ZREM (key " + aclProbeConns + ")",
			"ZSCORE (key " + aclProbeConns + ")"}},
		// (Redis checks no channel permission on SUNSUBSCRIBE.)
		{"other channels", "~presence:* &other:* +@all", []string{"SPUBLISH (channel " + aclProbeChannel + ")",
			"SSUBSCRIBE (channel " + aclProbeChannel + ")"}},
		{"no transactions for the check", "~presence:* &presence:* +@all -multi", []string{
			"MULTI (the operator's check queues the gateways' commands in a transaction it discards)"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			name := fmt.Sprintf("%s-%d", user, i)
			aclUser(t, name, tt.rules)
			h := checkCluster(context.Background(), testRedisNodes, redisAccess{username: name, password: "pw"}, 5*time.Second)
			g.Expect(h.seedErrors).To(BeEmpty())
			g.Expect(h.missingPerms).To(ConsistOf(tt.wantMissing))
			ready, _ := clusterConditions(testRedisNodes, name, h)
			if len(tt.wantMissing) == 0 {
				g.Expect(ready.reason).To(Equal(presencev1alpha1.ReasonClusterOK), ready.message)
				return
			}
			g.Expect(ready.status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.reason).To(Equal(presencev1alpha1.ReasonInsufficientPermissions))
			g.Expect(ready.message).To(ContainSubstring(fmt.Sprintf("the ACL user %q may not run what the gateways need: ", name)))
			for _, m := range tt.wantMissing {
				g.Expect(ready.message).To(ContainSubstring(m))
			}
		})
	}

	// The probe changed nothing: no key of the probe user exists.
	for _, addr := range testRedisNodes {
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
		keys, err := c.Keys(context.Background(), "presence:{"+aclProbeUser+"}*").Result()
		_ = c.Close()
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		NewWithT(t).Expect(keys).To(BeEmpty(), "on %s", addr)
	}
}

// TestGatewayCommandsCoverTheStore: every command the Redis store sends,
// from Go, from its Lua scripts or from its subscriber, is one the ACL
// probe checks. A new command in the store fails here until it is added
// to gatewayCommands (and to the documented rules).
func TestGatewayCommandsCoverTheStore(t *testing.T) {
	g := NewWithT(t)
	root := filepath.Join("..", "gateway", "presence", "redisstore")
	var probed []string
	for _, p := range gatewayCommands {
		probed = append(probed, p.name)
	}
	sent := map[string]string{} // command -> where

	luas, err := filepath.Glob(filepath.Join(root, "lua", "*.lua"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(luas).NotTo(BeEmpty())
	luaCall := regexp.MustCompile(`redis\.p?call\(\s*['"]([A-Za-z]+)['"]`)
	for _, f := range luas {
		b, err := os.ReadFile(f)
		g.Expect(err).NotTo(HaveOccurred())
		for _, m := range luaCall.FindAllStringSubmatch(string(b), -1) {
			sent[strings.ToUpper(m[1])] = f
		}
	}

	// go-redis methods of the store's clients and pipelines, and the raw
	// commands of the subscriber.
	goFiles, err := filepath.Glob(filepath.Join(root, "*.go"))
	g.Expect(err).NotTo(HaveOccurred())
	sub, err := filepath.Glob(filepath.Join(root, "shardsub", "*.go"))
	g.Expect(err).NotTo(HaveOccurred())
	method := regexp.MustCompile(`(?:s\.client\(\)|\bp|\bnode|\bnext|\bcc)\.([A-Z][A-Za-z]+)\(ctx|Script\.(Run|EvalSha|Eval)\(`)
	raw := regexp.MustCompile(`(?:request|send)\(ctx, (?:nil, )?"([A-Z]+)"`)
	notCommands := []string{"Pipelined", "Close", "ReloadState", "MasterForKey", "ForEachMaster", "ForEachShard", "Process"}
	commandOf := map[string]string{"Run": "EVALSHA", "ZAddArgs": "ZADD", "ZRangeArgs": "ZRANGE", "ZRangeWithScores": "ZRANGE"}
	for _, f := range append(goFiles, sub...) {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		g.Expect(err).NotTo(HaveOccurred())
		for _, m := range method.FindAllStringSubmatch(string(b), -1) {
			name := m[1] + m[2]
			if slices.Contains(notCommands, name) {
				continue
			}
			if c, ok := commandOf[name]; ok {
				name = c
			}
			sent[strings.ToUpper(name)] = f
		}
		for _, m := range raw.FindAllStringSubmatch(string(b), -1) {
			sent[m[1]] = f
		}
	}
	g.Expect(sent).To(HaveKey("SPUBLISH"), "the source scan found nothing: the regular expressions are stale")
	g.Expect(sent).To(HaveKey("SSUBSCRIBE"), "the source scan found nothing: the regular expressions are stale")
	for cmd, where := range sent {
		if cmd == "AUTH" {
			continue // the credentials themselves, checked by the check's own connection
		}
		g.Expect(probed).To(ContainElement(cmd), "%s sends %s, which the ACL probe (gatewayCommands) does not check", where, cmd)
	}
}

// TestRedisClusterACLUser: a RedisCluster whose spec.auth.username names an
// ACL user (on every node) is Ready when the user may run what the gateways
// need, and InsufficientPermissions naming the missing commands when not;
// its gateways get the user as REDIS_USERNAME. The user set both in the
// spec and in the Secret is refused.
func TestRedisClusterACLUser(t *testing.T) {
	requireRedisCluster(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	user := "presencekit-" + ns
	aclUser(t, user, redistest.DocumentedACLRules(t, "presence")+" -spublish -evalsha")
	createSecret(t, ns, "redis-auth", map[string]string{"password": "pw"})
	rc := &presencev1alpha1.RedisCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acl"},
		Spec: presencev1alpha1.RedisClusterSpec{
			External: &presencev1alpha1.ExternalRedisCluster{Nodes: testRedisNodes[:1]},
			Auth:     &presencev1alpha1.RedisAuth{SecretRef: presencev1alpha1.LocalRef{Name: "redis-auth"}, Username: user},
		},
	}
	g.Expect(k8sClient.Create(ctx, rc)).To(Succeed())

	eventually(t, clusterCondition(ns, "acl", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonInsufficientPermissions),
		HaveField("Message", And(ContainSubstring(fmt.Sprintf("the ACL user %q may not run what the gateways need: EVALSHA, SPUBLISH", user)),
			Not(ContainSubstring("ZADD"))))))
	eventually(t, clusterCondition(ns, "acl", presencev1alpha1.ConditionDegraded)).Should(
		statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonInsufficientPermissions))

	createGateway(t, ns, "chat", "acl", nil)
	dep := waitDeployment(t, ns, "chat")
	g.Expect(envValue(dep, "REDIS_USERNAME")).To(Equal(user))
	g.Expect(envValue(dep, "REDIS_PASSWORD_FILE")).To(Equal("/etc/presence/redis/password"))
	_, usernameFile := envOf(dep, "REDIS_USERNAME_FILE")
	g.Expect(usernameFile).To(BeFalse(), "the user comes from the spec, not from the Secret")
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionRedisReady)).Should(And(
		HaveField("Status", metav1.ConditionFalse), HaveField("Message", ContainSubstring(presencev1alpha1.ReasonInsufficientPermissions))))

	// Granted the commands, the same user is Ready at the next check.
	aclUser(t, user, redistest.DocumentedACLRules(t, "presence"))
	eventually(t, clusterCondition(ns, "acl", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK))

	// A username key in the Secret too: which one is meant is unclear.
	both := createSecret(t, ns, "both", map[string]string{"username": "other", "password": "pw"})
	editRedisCluster(t, rc, func(rc *presencev1alpha1.RedisCluster) { rc.Spec.Auth.SecretRef.Name = both.Name })
	eventually(t, clusterCondition(ns, "acl", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonInvalidSecret),
		HaveField("Message", ContainSubstring("the ACL user is set twice"))))
}

// editRedisCluster applies edit to a fresh read of rc and updates it, again
// on a conflict (the checks write its status meanwhile).
func editRedisCluster(t *testing.T, rc *presencev1alpha1.RedisCluster, edit func(*presencev1alpha1.RedisCluster)) {
	t.Helper()
	ctx := context.Background()
	eventually(t, func() error {
		if err := get(ctx, rc); err != nil {
			return err
		}
		edit(rc)
		return k8sClient.Update(ctx, rc)
	}).Should(Succeed())
}
