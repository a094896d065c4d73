package main

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestBadFlagsNameTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--redis-check-interval=10ms"}, "--redis-check-interval=10ms: must be at least 1s"},
		{[]string{"--redis-check-timeout=1m"}, "--redis-check-timeout=1m0s: must be positive and at most --redis-check-interval"},
		{[]string{"--redis-check-interval=soon"}, `invalid value "soon" for flag -redis-check-interval`},
		{[]string{"--redis-check-heartbeat=10s"}, "--redis-check-heartbeat=10s: must be at least --redis-check-interval"},
		{[]string{"--max-concurrent-reconciles-presencegateway=0"}, "--max-concurrent-reconciles-presencegateway=0: must be at least 1"},
		{[]string{"--max-concurrent-reconciles-rediscluster=-1"}, "--max-concurrent-reconciles-rediscluster=-1: must be at least 1"},
		{[]string{"--max-concurrent-rollouts=-1"}, "--max-concurrent-rollouts=-1: must be at least 0 (0 = no limit)"},
		{[]string{"--kube-api-qps=0"}, "--kube-api-qps=0: must be positive"},
		{[]string{"--kube-api-qps=80", "--kube-api-burst=40"}, "--kube-api-burst=40: must be at least --kube-api-qps (80)"},
		{[]string{"--watch-namespaces=team-a,Team_B"}, `--watch-namespaces entry "Team_B"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseFlags(%q) = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

func TestWatchNamespacesFlag(t *testing.T) {
	for _, tt := range []struct {
		arg  string
		want []string
	}{
		{"", nil},
		{"team-a", []string{"team-a"}},
		{" team-a, team-b ,,team-a", []string{"team-a", "team-b"}},
	} {
		o, err := parseFlags([]string{"--watch-namespaces=" + tt.arg})
		if err != nil {
			t.Fatalf("--watch-namespaces=%q: %v", tt.arg, err)
		}
		if !slices.Equal(o.watchNamespaces, tt.want) {
			t.Errorf("--watch-namespaces=%q parsed as %q, want %q", tt.arg, o.watchNamespaces, tt.want)
		}
	}
}

// TestVersionFlag: --version prints one line and returns without reading a
// kubeconfig or checking the other flags. The test binary carries the
// defaults; make test-images checks the values make images sets.
func TestVersionFlag(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"--version", "--kubeconfig=/nonexistent", "--redis-check-interval=1ms"}, &out)
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	want := "presence-operator version dev, commit unknown, " + runtime.Version() + " "
	if got := out.String(); !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 1 {
		t.Fatalf("--version printed %q, want one line starting %q", got, want)
	}
}
