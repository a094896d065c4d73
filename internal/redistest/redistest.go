// Package redistest holds what the Redis tests of several packages share:
// where the shared cluster is, and the free ports for clusters of their own
// that they start with hack/redis-cluster.sh.
package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/internal/needs"
)

// NodesEnv names the Redis Cluster the Redis tests share: its seed nodes,
// comma separated. `make test-redis` starts the cluster and sets it.
const NodesEnv = "PRESENCE_TEST_REDIS_NODES"

// Nodes returns the seed nodes of the shared test cluster ($NodesEnv). When
// it is not set the test skips (fails in CI) with one line saying how to run
// it: these tests need a real Redis Cluster.
func Nodes(tb testing.TB) []string {
	tb.Helper()
	v := os.Getenv(NodesEnv)
	if v == "" {
		needs.Missing(tb, "needs a Redis Cluster ("+NodesEnv+" is not set): run `make test-redis`, "+
			"or `make redis-up` and export "+NodesEnv+"=127.0.0.1:7000,...,127.0.0.1:7005")
	}
	return strings.Split(v, ",")
}

// FreeBase returns the base port for a cluster of a test's own: the value
// of the environment variable env if set, else one whose ports (and bus
// ports) are free now, as `script free-base` (hack/redis-cluster.sh) finds
// it, so that two runs on one machine don't collide.
func FreeBase(script, env string) (int, error) {
	if v := os.Getenv(env); v != "" {
		base, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s=%q: %w", env, v, err)
		}
		return base, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", script, "free-base").Output()
	if err != nil {
		return 0, fmt.Errorf("hack/redis-cluster.sh free-base: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}
