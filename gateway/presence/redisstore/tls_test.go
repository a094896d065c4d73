package redisstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
	"github.com/presencekit/presence-operator/internal/poll"
	"github.com/presencekit/presence-operator/internal/redistest"
)

// writeTLSFiles writes a self-signed certificate for 127.0.0.1 as
// cert.pem, key.pem and ca.pem (the certificate is its own CA).
func writeTLSFiles(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "presencekit test redis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, b := range map[string][]byte{
		"cert.pem": cert, "ca.pem": cert,
		"key.pem": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// The store over TLS (REDIS_TLS with REDIS_TLS_CA_FILE) with a password, on
// a cluster of its own that speaks only TLS: commands, the scripts and the
// sharded subscriptions (the subscriber's own TLS dial) all work; a store
// without TLS is reported unavailable.
func TestTLS(t *testing.T) {
	testNodes(t)
	dir := t.TempDir()
	writeTLSFiles(t, dir)
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
