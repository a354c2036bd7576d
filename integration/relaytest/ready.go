package relaytest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RootCertPath is where the local CA of a caddy whose file_system storage
// is storageDir keeps its root certificate.
func RootCertPath(storageDir string) string {
	return filepath.Join(storageDir, "pki", "authorities", "local", "root.crt")
}

// LocalCATLS returns a client TLS config that trusts only the local CA of
// the caddy whose storage is storageDir and expects the name localhost,
// or an error while that CA's root is not written yet.
func LocalCATLS(storageDir string) (*tls.Config, error) {
	path := RootCertPath(storageDir)
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", path)
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}, nil
}

// Started is what caddy logs once its configuration is loaded and every
// app has started ("serving initial configuration"). Probe a TLS site only
// after it: Caddy may start the HTTP app before the TLS app, and a
// handshake while caddytls.(*TLS).Start still runs is a data race inside
// Caddy (Start writes the fields that the handshake's certificate event
// reads), which the race detector reports in caddy's output.
const Started = "serving initial configuration"

// Serving probes a starting caddy whose output goes to logs once: nil
// when each of addrs accepts a TCP connection and, when httpsAddr is not
// "", caddy has logged Started and a TLS handshake with httpsAddr verified
// against the local CA under storageDir succeeds (1 s each).
func Serving(logs *LogSink, storageDir, httpsAddr string, addrs ...string) error {
	for _, addr := range addrs {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		conn.Close()
	}
	if httpsAddr == "" {
		return nil
	}
	if !strings.Contains(logs.String(), Started) {
		return fmt.Errorf("caddy has not logged %q yet", Started)
	}
	cfg, err := LocalCATLS(storageDir)
	if err != nil {
		return err
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", httpsAddr, cfg)
	if err != nil {
		return err
	}
	return conn.Close()
}
