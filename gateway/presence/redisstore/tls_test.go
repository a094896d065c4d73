package redisstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
	"github.com/presencekit/presence-operator/internal/poll"
	"github.com/presencekit/presence-operator/internal/redistest"
)

// The store over TLS (REDIS_TLS with REDIS_TLS_CA_FILE) with a password, on
// a cluster of its own that speaks only TLS: commands, the scripts and the
// sharded subscriptions (the subscriber's own TLS dial) all work; a store
// without TLS is reported unavailable.
func TestTLS(t *testing.T) {
	testNodes(t)
	dir := t.TempDir()
	redistest.WriteTLSFiles(t, dir)
	base, err := redistest.FreeBase(clusterScript(), "PRESENCE_TEST_REDIS_TLS_BASE_PORT")
	if err != nil {
		t.Fatal(err)
	}
	c := &ownCluster{
		base:     base,
		script:   clusterScript(),
		password: ownClusterPassword,
		env:      []string{"REDIS_CLUSTER_TLS_DIR=" + dir},
	}
	for i := range 6 {
		c.nodes = append(c.nodes, fmt.Sprintf("127.0.0.1:%d", base+i))
	}
	t.Cleanup(func() { _, _ = c.run("down") }) // before up: a failed up leaves nodes to stop
	c.mustRun(t, "up")

	ns := testNamespace()
	newTLS := func() *testReplica {
		ev := &presencetest.Recorder{}
		m, pm := newTestMetrics()
		s, err := New(Config{Nodes: c.nodes, Namespace: ns, Password: c.password, TLS: true, TLSCAFile: filepath.Join(dir, "ca.pem"), Metrics: m},
			presence.Options{TTL: 2 * time.Second, Heartbeat: 400 * time.Millisecond, OnEvent: ev.Add, Metrics: pm})
		if err != nil {
			t.Fatal(err)
		}
		r := &testReplica{Store: s, ev: ev}
		r.start()
		t.Cleanup(func() { r.stop(); _ = s.Close(tctx(t)) })
		return r
	}
	a, b := newTLS(), newTLS()
	id := ns + "-tls"
	if err := b.Watch(tctx(t), id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Connect(tctx(t), presence.Conn{UserID: id, ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, "online event over TLS", func() (bool, string) {
		evs := b.ev.Of(id)
		return len(evs) == 1 && evs[0].Online, fmt.Sprintf("%+v", evs)
	})
	if u := getOne(t, b, id); !u.Online || u.Connections != 1 {
		t.Fatalf("Get over TLS: %+v", u)
	}
	if err := b.Ready(tctx(t)); err != nil {
		t.Fatalf("Ready over TLS: %v", err)
	}

	plain := newReplica(t, c.nodes, ns, replicaOpts{password: c.password, noRun: true})
	if err := plain.Ready(tctx(t)); !errors.Is(err, presence.ErrUnavailable) {
		t.Fatalf("Ready without TLS against a TLS cluster: %v, want ErrUnavailable", err)
	}
}

// The REDIS_TLS_* settings the operator derives from a RedisCluster's
// spec.tls, on a TLS-only cluster of the test's own whose server
// certificate (signed by a test CA) names 127.0.0.1 and localhost: a
// server name the certificate names works and one it does not name is
// refused; skipping verification works without a CA; and the CA file is
// re-read when it changes, as the kubelet updates a mounted Secret, so a
// store that started with the wrong CA becomes ready once the file holds
// the right one, without a restart.
func TestTLSServerNameSkipVerifyAndCARotation(t *testing.T) {
	testNodes(t)
	dir := t.TempDir()
	caPEM := redistest.WriteTLSFiles(t, dir)
	otherCA, _, _ := redistest.NewCA(t, "another CA")
	c := redistest.StartCluster(t, clusterScript(), "PRESENCE_TEST_REDIS_TLS_BASE_PORT", "REDIS_CLUSTER_TLS_DIR="+dir)

	caFile := filepath.Join(t.TempDir(), "ca.crt")
	writeCA := func(pemBytes []byte) {
		// As the kubelet does: a new file renamed over the old one.
		tmp := caFile + ".tmp"
		if err := os.WriteFile(tmp, pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, caFile); err != nil {
			t.Fatal(err)
		}
	}
	writeCA(caPEM)
	open := func(cfg Config) *Store {
		t.Helper()
		m, pm := newTestMetrics()
		cfg.Nodes, cfg.Namespace, cfg.TLS, cfg.Metrics = c.Nodes[:1], testNamespace(), true, m
		cfg.FileCheckInterval = 10 * time.Millisecond
		s, err := New(cfg, presence.Options{TTL: 2 * time.Second, Heartbeat: 400 * time.Millisecond, OnEvent: (&presencetest.Recorder{}).Add, Metrics: pm})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(tctx(t)) })
		return s
	}

	for _, tc := range []struct {
		name  string
		cfg   Config
		ready bool
	}{
		{"the CA file", Config{TLSCAFile: caFile}, true},
		{"a server name the certificate names", Config{TLSCAFile: caFile, TLSServerName: "localhost"}, true},
		{"a server name it does not name", Config{TLSCAFile: caFile, TLSServerName: "redis.example.internal"}, false},
		{"skipping verification", Config{TLSInsecureSkipVerify: true}, true},
		{"the system roots", Config{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := open(tc.cfg).Ready(tctx(t))
			if tc.ready && err != nil {
				t.Fatalf("Ready: %v", err)
			}
			if !tc.ready && !errors.Is(err, presence.ErrUnavailable) {
				t.Fatalf("Ready: %v, want ErrUnavailable", err)
			}
		})
	}

	t.Run("CA rotation", func(t *testing.T) {
		writeCA(otherCA)
		s := open(Config{TLSCAFile: caFile})
		if err := s.Ready(tctx(t)); !errors.Is(err, presence.ErrUnavailable) {
			t.Fatalf("Ready with a CA that did not sign the nodes: %v, want ErrUnavailable", err)
		}
		writeCA(caPEM)
		poll.Eventually(t, 10*time.Second, "Ready once the CA file holds the right CA", func() (bool, string) {
			err := s.Ready(tctx(t))
			return err == nil, fmt.Sprint(err)
		})
	})
}
