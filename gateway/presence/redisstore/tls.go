package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"time"

	"github.com/presencekit/presence-operator/gateway/filewatch"
)

// tlsSettings make the TLS configuration of each new connection to a node
// (REDIS_TLS and the REDIS_TLS_* settings): the CA bundle is a file
// re-read when it changes (a mounted Secret or ConfigMap), so a rotated CA
// is trusted from the next connection on without a restart, as a rotated
// password is; open connections keep the session they verified.
type tlsSettings struct {
	serverName string
	skipVerify bool
	ca         *filewatch.File[*x509.CertPool] // nil: the system roots
}

// newTLSSettings reads cfg's TLS settings; nil without TLS.
func newTLSSettings(cfg Config, fo filewatch.Options) (*tlsSettings, error) {
	if !cfg.TLS {
		return nil, nil
	}
	t := &tlsSettings{serverName: cfg.TLSServerName, skipVerify: cfg.TLSInsecureSkipVerify}
	if cfg.TLSCAFile != "" {
		f, err := filewatch.New("REDIS_TLS_CA_FILE", cfg.TLSCAFile, parseCABundle, fo)
		if err != nil {
			return nil, err
		}
		t.ca = f
	}
	return t, nil
}

// parseCABundle reads REDIS_TLS_CA_FILE: PEM certificates.
func parseCABundle(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}

// forAddr is the TLS configuration of a new connection to addr: the
// certificate is verified against REDIS_TLS_SERVER_NAME, or else addr's
// host (the address a node announces, often an IP), with the CA bundle of
// now.
func (t *tlsSettings) forAddr(addr string) *tls.Config {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.serverName,
		InsecureSkipVerify: t.skipVerify, //nolint:gosec // REDIS_TLS_INSECURE_SKIP_VERIFY, documented as for tests only
	}
	if c.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			c.ServerName = host
		}
	}
	if t.ca != nil {
		c.RootCAs = t.ca.Current()
	}
	return c
}

// dialer is go-redis's Dialer for TLS connections: go-redis's own dialer
// would use one tls.Config, fixed when the client is made.
func (t *tlsSettings) dialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := tls.Dialer{
			NetDialer: &net.Dialer{Timeout: timeout, KeepAliveConfig: net.KeepAliveConfig{
				Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3, // as go-redis's own dialer
			}},
			Config: t.forAddr(addr),
		}
		return d.DialContext(ctx, network, addr)
	}
}

// tlsFor is the subscriber's TLS configuration per node, nil without TLS.
func (s *Store) tlsFor() func(addr string) *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.forAddr
}
