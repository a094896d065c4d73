package v1alpha1_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

func TestQualifyRedisNode(t *testing.T) {
	for node, want := range map[string]string{
		"redis-0.redis:6379":                 "redis-0.redis.data.svc:6379", // a StatefulSet pod behind its headless Service
		"redis:6379":                         "redis.data.svc:6379",
		"redis-0.redis.data.svc:6379":        "redis-0.redis.data.svc:6379",
		"redis.other.svc.cluster.local:6379": "redis.other.svc.cluster.local:6379",
		"redis.example.com:6379":             "redis.example.com:6379",
		"redis.:6379":                        "redis.:6379",
		"10.0.0.7:6379":                      "10.0.0.7:6379",
		"[fd00::7]:6379":                     "[fd00::7]:6379",
		"localhost:7000":                     "localhost:7000",
		"not-host-port":                      "not-host-port",
		"clustercfg.my-cache.use1.cache.amazonaws.com:6379": "clustercfg.my-cache.use1.cache.amazonaws.com:6379",
	} {
		if got := presencev1alpha1.QualifyRedisNode(node, "data"); got != want {
			t.Errorf("QualifyRedisNode(%q, data) = %q, want %q", node, got, want)
		}
	}
}

func TestSeedNodes(t *testing.T) {
	rc := &presencev1alpha1.RedisCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "presence-redis"},
		Spec:       presencev1alpha1.RedisClusterSpec{External: &presencev1alpha1.ExternalRedisCluster{Nodes: []string{"redis-0.redis:6379", "10.0.0.1:6379"}}},
	}
	got := rc.SeedNodes()
	if len(got) != 2 || got[0] != "redis-0.redis.data.svc:6379" || got[1] != "10.0.0.1:6379" {
		t.Errorf("SeedNodes() = %q", got)
	}
	// spec.serviceRef: the seeds the operator resolved, never the nodes
	// the cluster announced (those are what a check finds).
	rc.Spec.External = nil
	rc.Status.Nodes = []string{"10.0.0.9:6379"}
	if got := rc.SeedNodes(); len(got) != 0 {
		t.Errorf("SeedNodes() without a source = %q, want none", got)
	}
	rc.Spec.ServiceRef = &presencev1alpha1.RedisServiceRef{Name: "redis", Port: 6379}
	rc.Status.Seeds = []string{"redis-0.redis.data.svc:6379"}
	if got := rc.SeedNodes(); len(got) != 1 || got[0] != "redis-0.redis.data.svc:6379" {
		t.Errorf("SeedNodes() with spec.serviceRef = %q, want status.seeds", got)
	}
}
