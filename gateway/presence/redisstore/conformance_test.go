package redisstore

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
	"github.com/presencekit/presence-operator/internal/redistest"
)

// testNodes returns the seed nodes of the test cluster; without one the
// test skips (fails in CI): these tests need a real Redis Cluster.
func testNodes(t testing.TB) []string {
	t.Helper()
	return redistest.Nodes(t)
}

// testNamespace isolates one test's keys and leases from every other
// test sharing the cluster.
func testNamespace() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "pt" + hex.EncodeToString(b)
}

func factory(nodes []string, ns string) presencetest.Factory {
	return func(t *testing.T, opts presence.Options) presence.Store {
		s, err := New(Config{Nodes: nodes, Namespace: ns, ReplicaName: "test", Metrics: NewMetrics(prometheus.NewRegistry())}, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// TestConformanceFakeClock runs the suite on the suite's movable clock:
// the store measures every expiry with Options.Now (scores, leases,
// graces), never with Redis key expiry, so it can.
func TestConformanceFakeClock(t *testing.T) {
	presencetest.Run(t, factory(testNodes(t), testNamespace()), presencetest.Config{MultiReplica: true})
}

// TestConformanceRealTime runs it again on real time with short durations.
func TestConformanceRealTime(t *testing.T) {
	presencetest.Run(t, factory(testNodes(t), testNamespace()), presencetest.Config{MultiReplica: true, RealTime: true})
}
