package controllers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// TestSamples applies config/samples as a user would and checks the promise
// of the README: a Deployment with REDIS_NODES, and a status saying why the
// gateway is or is not Ready. The sample RedisCluster points at the local
// cluster of `make redis-up`.
func TestSamples(t *testing.T) {
	requireRedisCluster(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	dir := filepath.Join("..", "config", "samples")

	rc := &presencev1alpha1.RedisCluster{}
	readYAML(t, filepath.Join(dir, "presence_v1alpha1_rediscluster.yaml"), rc)
	gw := &presencev1alpha1.PresenceGateway{}
	readYAML(t, filepath.Join(dir, "presence_v1alpha1_presencegateway.yaml"), gw)
	rc.Namespace, gw.Namespace = ns, ns
	// The sample names the cluster of a plain `make redis-up` (ports
	// 7000-7002); use the one this run started (REDIS_CLUSTER_BASE_PORT).
	g.Expect(rc.Spec.External.Nodes).To(Equal([]string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}))
	rc.Spec.External.Nodes = testRedisNodes[:3]
	g.Expect(k8sClient.Create(ctx, rc)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, gw)).To(Succeed())

	eventually(t, clusterCondition(ns, rc.Name, presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK))
	dep := waitDeployment(t, ns, gw.Name)
	g.Expect(seedsOf(t, ns, gw.Name)).To(Equal(strings.Join(testRedisNodes[:3], ",")))
	eventually(t, gatewayCondition(ns, gw.Name, presencev1alpha1.ConditionRedisReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonRedisClusterReady))
	eventually(t, gatewayCondition(ns, gw.Name, presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonRolloutInProgress),
		HaveField("Message", ContainSubstring("pods updated"))))
	markRolledOut(t, dep)
	eventually(t, gatewayCondition(ns, gw.Name, presencev1alpha1.ConditionReady)).Should(statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonReady))
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
