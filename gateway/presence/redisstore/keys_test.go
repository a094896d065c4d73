package redisstore

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/presence"
)

// Pure logic: the key layout keeps each user in one slot and round-trips
// channel names; bad input is refused with an error naming it.
func TestKeysShareTheUsersSlot(t *testing.T) {
	k := keyspace("presence")
	for _, id := range []string{"alice", "u:1@x.y", "a-b_c.d"} {
		for _, key := range []string{k.conns(id), k.user(id), k.channel(id)} {
			if !strings.Contains(key, "{"+id+"}") {
				t.Fatalf("%s lacks the hash tag {%s}", key, id)
			}
		}
		if got, ok := k.userFromChannel(k.channel(id)); !ok || got != id {
			t.Fatalf("userFromChannel(%s) = %q, %v", k.channel(id), got, ok)
		}
	}
	for _, bad := range []string{"", "a{b", "a}b", "x\ny", strings.Repeat("x", 257)} {
		if err := checkUserID(bad); err == nil {
			t.Fatalf("checkUserID(%q) accepted it", bad)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	opts := presence.Options{TTL: 60e9, Heartbeat: 20e9, OnEvent: func(presence.User) {}, Metrics: presence.NewMetrics(prometheus.NewRegistry())}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "REDIS_NODES is empty"},
		{Config{Nodes: []string{"redis-0"}}, `"redis-0": missing port`},
		{Config{Nodes: []string{"a:1"}, Namespace: "x{y}"}, "braces"},
		{Config{Nodes: []string{"a:1"}, TLS: true, TLSCAFile: "/nonexistent/ca.pem"}, "REDIS_TLS_CA_FILE"},
	} {
		tc.cfg.Metrics = NewMetrics(prometheus.NewRegistry())
		if _, err := New(tc.cfg, opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("New(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	bad := opts
	bad.TTL = bad.Heartbeat
	if _, err := New(Config{Nodes: []string{"a:1"}, Metrics: NewMetrics(prometheus.NewRegistry())}, bad); err == nil || !strings.Contains(err.Error(), "twice the heartbeat") {
		t.Fatalf("New with TTL = heartbeat: %v", err)
	}
	if _, err := New(Config{Nodes: []string{"a:1"}}, opts); err == nil || !strings.Contains(err.Error(), "Config.Metrics") {
		t.Fatalf("New without Config.Metrics: %v", err)
	}
	if name := newIncarnation("pod|{1}"); strings.ContainsAny(name, "|{}") {
		t.Fatalf("incarnation %q keeps a separator or brace", name)
	}
}
