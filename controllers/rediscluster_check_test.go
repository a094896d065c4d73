package controllers

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
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
	})
	g.Expect(nodes).To(Equal([]string{"127.0.0.1:7000", "127.0.0.1:7004", "[::1]:7001"}))
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
		{"down", clusterHealth{answered: "a:1", state: "fail", slotsOK: 10000}, metav1.ConditionFalse, presencev1alpha1.ReasonClusterDown, ""},
		{"uncovered", clusterHealth{answered: "a:1", state: "ok", slotsOK: 16000}, metav1.ConditionFalse, presencev1alpha1.ReasonSlotsUncovered, ""},
		{"ok", clusterHealth{answered: "a:1", state: "ok", slotsOK: 16384, nodes: []string{"a:1"}}, metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK, ""},
		{"ok but a seed is down", clusterHealth{answered: "b:2", state: "ok", slotsOK: 16384, seedErrors: map[string]error{"a:1": refused}},
			metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK, presencev1alpha1.ReasonSeedsUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ready, degraded := clusterConditions(seeds, tt.h)
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
