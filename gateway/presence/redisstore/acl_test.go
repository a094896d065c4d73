package redisstore

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
	"github.com/presencekit/presence-operator/internal/redistest"
)

// TestConformanceUnderTheDocumentedACLUser runs the conformance suite as
// an ACL user with exactly the rules docs/operations.md gives ("Redis ACL
// user"), created on every node, and then finds no refusal of that user in
// any node's ACL LOG: the documented rules are enough for everything the
// store does (scripts, pipelines, sharded pub/sub, the lease and the reaping),
// and the operator's permission check asks for no less.
func TestConformanceUnderTheDocumentedACLUser(t *testing.T) {
	nodes := testNodes(t)
	ns := testNamespace()
	user := "presencekit-" + ns
	admin := func(addr string, args ...any) *redis.Cmd {
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
		defer c.Close()
		return c.Do(context.Background(), args...)
	}
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">pw"}
	for _, r := range strings.Fields(redistest.DocumentedACLRules(t, ns)) {
		args = append(args, r)
	}
	for _, addr := range nodes {
		if err := admin(addr, args...).Err(); err != nil {
			t.Fatalf("ACL SETUSER on %s: %v", addr, err)
		}
		if err := admin(addr, "ACL", "LOG", "RESET").Err(); err != nil {
			t.Fatalf("ACL LOG RESET on %s: %v", addr, err)
		}
	}
	t.Cleanup(func() {
		for _, addr := range nodes {
			_ = admin(addr, "ACL", "DELUSER", user).Err()
		}
	})

	presencetest.Run(t, func(t *testing.T, opts presence.Options) presence.Store {
		s, err := New(Config{Nodes: nodes, Namespace: ns, ReplicaName: "acl", Username: user, Password: "pw",
			Metrics: NewMetrics(prometheus.NewRegistry())}, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, presencetest.Config{MultiReplica: true})

	for _, addr := range nodes {
		entries, err := admin(addr, "ACL", "LOG").Slice()
		if err != nil {
			t.Fatalf("ACL LOG on %s: %v", addr, err)
		}
		for _, e := range entries {
			if entry := fmt.Sprint(e); strings.Contains(entry, user) {
				t.Errorf("%s refused the documented ACL user: %s", addr, entry)
			}
		}
	}
}
