package main

import (
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
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
	}
	for _, tt := range tests {
		err := run(tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
