package integration

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// rootCertPath is where caddy's local CA keeps its root certificate.
func (c *caddyProc) rootCertPath() string { return rt.RootCertPath(c.StorageDir()) }

// tlsConfigNoWait returns a client TLS config that trusts caddy's local CA
// root and expects the name localhost, or an error while the root is not
// written yet.
func (c *caddyProc) tlsConfigNoWait() (*tls.Config, error) { return rt.LocalCATLS(c.StorageDir()) }

// TLSConfig is tlsConfigNoWait for a caddy that Start found ready.
func (c *caddyProc) TLSConfig() *tls.Config {
	c.t.Helper()
	cfg, err := c.tlsConfigNoWait()
	if err != nil {
		c.t.Fatalf("caddy's local CA: %v", err)
	}
	return cfg
}

// tlsDial opens a TLS connection to localhost:port.
func tlsDial(d *net.Dialer, port int, cfg *tls.Config) (*tls.Conn, error) {
	return tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
}

// HTTPClient returns a client for both of caddy's ports, trusting its CA
// when an https site is up.
func (c *caddyProc) HTTPClient() *http.Client {
	tr := &http.Transport{DisableKeepAlives: true}
	if cfg, err := c.tlsConfigNoWait(); err == nil {
		tr.TLSClientConfig = cfg
	}
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// HTTPURL and HTTPSURL return the base URLs of the two sites.
func (c *caddyProc) HTTPURL() string  { return fmt.Sprintf("http://127.0.0.1:%d", c.HTTPPort) }
func (c *caddyProc) HTTPSURL() string { return fmt.Sprintf("https://localhost:%d", c.HTTPSPort) }
func (c *caddyProc) WSURL() string    { return fmt.Sprintf("ws://127.0.0.1:%d", c.HTTPPort) }
func (c *caddyProc) WSSURL() string   { return fmt.Sprintf("wss://localhost:%d", c.HTTPSPort) }

// leafSPKIHash returns the base64 SHA-256 of the public key of the leaf
// certificate served on the https port, the form Chromium's
// --ignore-certificate-errors-spki-list takes.
func (c *caddyProc) leafSPKIHash() string {
	c.t.Helper()
	conn, err := tlsDial(&net.Dialer{Timeout: 5 * time.Second}, c.HTTPSPort, c.TLSConfig())
	if err != nil {
		c.t.Fatalf("fetching caddy's certificate: %v", err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
