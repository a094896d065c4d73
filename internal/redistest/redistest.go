// Package redistest holds what the Redis tests of several packages share:
// where the shared cluster is, the free ports for clusters of their own
// that they start with hack/redis-cluster.sh, and the certificates of a
// TLS cluster.
package redistest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// Cluster is a six-node cluster a test started on ports of its own with
// hack/redis-cluster.sh (StartCluster).
type Cluster struct {
	// Nodes are its six nodes, host:port.
	Nodes  []string
	base   int
	script string
	env    []string
}

// StartCluster starts a cluster of the test's own with script
// (hack/redis-cluster.sh) on the base port of the environment variable
// portEnv, or on free ports (FreeBase); env adds the script's settings
// (REDIS_CLUSTER_TLS_DIR=..., REDIS_CLUSTER_PASSWORD=...). The test's
// cleanup stops it. It needs redis-server, like the shared cluster.
func StartCluster(tb testing.TB, script, portEnv string, env ...string) *Cluster {
	tb.Helper()
	base, err := FreeBase(script, portEnv)
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{base: base, script: script, env: env}
	for i := range 6 {
		c.Nodes = append(c.Nodes, fmt.Sprintf("127.0.0.1:%d", base+i))
	}
	tb.Cleanup(func() { // registered before up: a failed up leaves nodes to stop
		if out, err := c.Run("down"); err != nil {
			tb.Errorf("hack/redis-cluster.sh down (base %d): %v\n%s", base, err, out)
		}
	})
	if out, err := c.Run("up"); err != nil {
		tb.Fatalf("hack/redis-cluster.sh up (base %d): %v\n%s", base, err, out)
	}
	return c
}

// Run runs the script with verb (up, down, status, stop-node PORT...) on
// this cluster and returns its combined output.
func (c *Cluster) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{c.script}, args...)...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("REDIS_CLUSTER_BASE_PORT=%d", c.base))
	cmd.Env = append(cmd.Env, c.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// WriteTLSFiles writes what REDIS_CLUSTER_TLS_DIR needs into dir: ca.pem (a
// CA made for the test), and cert.pem and key.pem, a server certificate it
// signed for 127.0.0.1 and localhost. It returns the CA's PEM.
func WriteTLSFiles(tb testing.TB, dir string) []byte {
	tb.Helper()
	caPEM, caCert, caKey := NewCA(tb, "presencekit test CA")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "presencekit test redis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, // the cluster bus is mutual
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"ca.pem":   caPEM,
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return caPEM
}

// NewCA makes a self-signed CA: its PEM, certificate and key.
func NewCA(tb testing.TB, name string) (pemBytes []byte, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, key
}

// DocumentedACLRules are the rules of the ACL user docs/operations.md
// gives for the gateways ("Redis ACL user": the ACL SETUSER block, without
// the user name, "on" and the password), with the key and channel patterns
// of namespace instead of "presence". The tests that run the store and the
// operator's check under such a user read them here, so that the document
// cannot drift from what works.
func DocumentedACLRules(tb testing.TB, namespace string) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	doc := filepath.Join(filepath.Dir(file), "..", "..", "docs", "operations.md")
	b, err := os.ReadFile(doc)
	if err != nil {
		tb.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "ACL SETUSER presence on ><password>")
	if start < 0 {
		tb.Fatalf("%s: no line starting with %q", doc, "ACL SETUSER presence on ><password>")
	}
	block, _, _ := strings.Cut(text[start:], "```")
	fields := strings.Fields(strings.ReplaceAll(block, "\\", " "))[4:] // after ACL SETUSER presence on
	var rules []string
	for _, f := range fields {
		switch {
		case strings.HasPrefix(f, ">"):
			continue // the password
		case f == "~presence:*":
			f = "~" + namespace + ":*"
		case f == "&presence:*":
			f = "&" + namespace + ":*"
		}
		rules = append(rules, f)
	}
	return strings.Join(rules, " ")
}
