// Package redistest holds what the Redis tests of several packages share
// about the clusters they start with hack/redis-cluster.sh.
package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

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
