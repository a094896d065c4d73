package controllers

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

func TestRedisClusterReadyOnRealCluster(t *testing.T) {
	requireRedisCluster(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createRedisCluster(t, ns, "real", testRedisNodes[:1], "")

	eventually(t, clusterCondition(ns, "real", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK))
	eventually(t, clusterCondition(ns, "real", presencev1alpha1.ConditionDegraded)).Should(statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonAsExpected))
	rc := &presencev1alpha1.RedisCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "real"}}
	g := NewWithT(t)
	g.Expect(get(ctx, rc)).To(Succeed())
	g.Expect(rc.Status.ClusterState).To(Equal("ok"))
	g.Expect(rc.Status.SlotsCovered).To(Equal(int32(16384)))
	g.Expect(rc.Status.Masters).To(Equal(int32(3)), "status.masters")
	g.Expect(rc.Status.Replicas).To(Equal(int32(3)), "status.replicas")
	// One seed is enough: the six nodes are discovered from CLUSTER SHARDS.
	g.Expect(rc.Status.Nodes).To(ConsistOf(testRedisNodes))
	g.Expect(rc.Status.ObservedGeneration).To(Equal(rc.Generation))

	// Checks keep running on the interval, but a steady cluster writes no status.
	rv := rc.ResourceVersion
	NewWithT(t).Consistently(func(g Gomega) string {
		g.Expect(get(ctx, rc)).To(Succeed())
		return rc.ResourceVersion
	}).WithTimeout(2*testCheckInterval + time.Second).WithPolling(200 * time.Millisecond).Should(Equal(rv))
}

func TestRedisClusterUnreachable(t *testing.T) {
	ns := newNamespace(t)
	closed := closedPort(t)
	createRedisCluster(t, ns, "gone", []string{closed}, "")

	eventually(t, clusterCondition(ns, "gone", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonUnreachable),
		HaveField("Message", ContainSubstring(closed))))
	eventually(t, clusterCondition(ns, "gone", presencev1alpha1.ConditionDegraded)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonUnreachable))
	eventually(t, func(g Gomega) []string {
		var reasons []string
		for _, e := range eventsFor(g, ns, "gone") {
			reasons = append(reasons, e.Reason)
		}
		return reasons
	}).Should(ContainElement(presencev1alpha1.ReasonUnreachable))

	// A gateway on it is not Ready, and says why.
	createGateway(t, ns, "chat", "gone", nil)
	eventually(t, gatewayCondition(ns, "chat", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotReady),
		HaveField("Message", ContainSubstring("Unreachable"))))
}

func TestRedisClusterSecretNotFound(t *testing.T) {
	ns := newNamespace(t)
	createRedisCluster(t, ns, "auth", []string{"127.0.0.1:7000"}, "missing")
	eventually(t, clusterCondition(ns, "auth", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonSecretNotFound),
		HaveField("Message", ContainSubstring(`"missing"`))))
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestBlackholedClusterDoesNotHoldUpOthers: a RedisCluster whose node
// accepts connections and never answers keeps its check waiting for the
// whole timeout (longer than this test's waits), and another RedisCluster
// is checked and becomes Ready meanwhile.
func TestBlackholedClusterDoesNotHoldUpOthers(t *testing.T) {
	requireRedisCluster(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	blackhole := startFakeRedis(t, nil)
	stuck := createRedisCluster(t, ns, "blackholed", []string{blackhole.addr}, "")
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, stuck) })
	select {
	case <-blackhole.accepted: // its check is under way, and will wait testCheckTimeout
	case <-time.After(waitTimeout):
		t.Fatal("the blackholed RedisCluster was never checked")
	}

	createRedisCluster(t, ns, "healthy", testRedisNodes[:1], "")
	eventually(t, clusterCondition(ns, "healthy", presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK))
	healthy := &presencev1alpha1.RedisCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "healthy"}}
	g.Expect(get(ctx, healthy)).To(Succeed())
	g.Expect(healthy.Status.LastCheckTime).NotTo(BeNil(), "status.lastCheckTime")

	// The blackholed check is still waiting: it has written nothing.
	g.Expect(get(ctx, stuck)).To(Succeed())
	g.Expect(stuck.Status.Conditions).To(BeEmpty(), "the blackholed check ended before the healthy cluster was Ready: the test proves nothing")
}

// TestRedisClusterDetailsDoNotRewriteEveryGateway: while a shared
// RedisCluster stays not Ready for the same reason, its checks keep
// rewriting its own status with new details (here the slots covered while
// the cluster recovers), and the gateways referencing it write nothing: their
// RedisReady names the reason, not the details, so one RedisCluster change
// does not cost one status write per gateway.
func TestRedisClusterDetailsDoNotRewriteEveryGateway(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	var checks atomic.Int64
	recovering := startFakeRedis(t, func(cmd []string) string {
		switch strings.Join(cmd, " ") {
		case "CLUSTER INFO":
			// Each check sees a few more slots ok, never all.
			return respBulk(fmt.Sprintf("cluster_state:fail\r\ncluster_slots_ok:%d\r\n", 1000+checks.Add(1)))
		case "CLUSTER SHARDS":
			return "*0\r\n"
		}
		return fakeUnknownCommand
	})
	createRedisCluster(t, ns, "recovering", []string{recovering.addr}, "")
	gateways := []string{"chat-a", "chat-b", "chat-c"}
	for _, name := range gateways {
		createGateway(t, ns, name, "recovering", nil)
	}
	for _, name := range gateways {
		eventually(t, gatewayCondition(ns, name, presencev1alpha1.ConditionReady)).Should(And(
			statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRedisClusterNotReady),
			HaveField("Message", ContainSubstring(presencev1alpha1.ReasonClusterDown))))
	}
	writes := gatewayWrites.in(ns)
	var before int
	eventually(t, func(g Gomega) {
		n := writes()
		g.Consistently(writes).WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(Equal(n))
		before = n
	}).Should(Succeed())

	// Two more RedisCluster status writes, each with a new message, and
	// every gateway reconciled after them.
	rc := &presencev1alpha1.RedisCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "recovering"}}
	NewWithT(t).Expect(get(ctx, rc)).To(Succeed())
	messages := map[string]bool{}
	reconciles := gatewayReconciles.in(ns)
	woken := reconciles()
	eventually(t, func(g Gomega) int {
		g.Expect(get(ctx, rc)).To(Succeed())
		c := meta.FindStatusCondition(rc.Status.Conditions, presencev1alpha1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(presencev1alpha1.ReasonClusterDown))
		messages[c.Message] = true
		return len(messages)
	}).Should(BeNumerically(">=", 3))
	eventually(t, reconciles).Should(BeNumerically(">=", woken+2*len(gateways)))
	NewWithT(t).Expect(writes()).To(Equal(before), "a RedisCluster detail rewrote gateway status")
}
