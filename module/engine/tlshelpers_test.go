package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// Helpers of the TLS parking tests: relays over loopback TLS with a
// self-signed certificate, and a way to put several TLS records into
// one TCP write.

// shortLinger sets lingerTime for one test; no relay may be running
// when it is set or restored.
func shortLinger(t *testing.T, d time.Duration) {
	old := lingerTime
	lingerTime = d
	t.Cleanup(func() { lingerTime = old })
}

func legParked(l *leg) bool {
	l.park.mu.Lock()
	defer l.park.mu.Unlock()
	return l.park.state == pumpParked
}

func waitBothParked(t *testing.T, h *harness, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !legParked(h.session.legs[Client]) || !legParked(h.session.legs[Backend]) {
		if time.Now().After(deadline) {
			t.Fatalf("legs not parked after %v (client %v, backend %v)", timeout,
				legParked(h.session.legs[Client]), legParked(h.session.legs[Backend]))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startTLS runs a session over loopback TLS: the relay is the TLS server
// to the test client and the TLS client of the test backend, as with wss
// on both sides. The returned holdConn lies beneath the test client's TLS
// connection, to gather its records into one TCP write.
func startTLS(t *testing.T, cfg Config) (*harness, *holdConn) {
	t.Helper()
	return startTLSVersion(t, cfg, 0)
}

// startTLSVersion is startTLS with the client leg's TLS version capped
// at vers (0: the default).
func startTLSVersion(t *testing.T, cfg Config, vers uint16) (*harness, *holdConn) {
	t.Helper()
	var hold *holdConn
	n := 0
	h := startOn(t, cfg, true, func() (net.Conn, net.Conn) {
		n++
		if n == 1 {
			cTest, cRelay := tlsLegPairVersion(t, vers)
			hold = cTest.NetConn().(*holdConn)
			return cTest, cRelay
		}
		a, b := loopbackPair(t)
		relay, backend := tls.Client(a, clientTLS()), tls.Server(b, serverTLS())
		handshakeBoth(t, backend, relay)
		return backend, relay
	})
	return h, hold
}

// tlsLegPair returns a TLS connection over loopback TCP, handshake done:
// the test's client end (over a holdConn) and the relay's server end.
func tlsLegPair(t *testing.T) (*tls.Conn, *tls.Conn) {
	t.Helper()
	return tlsLegPairVersion(t, 0)
}

func tlsLegPairVersion(t *testing.T, vers uint16) (*tls.Conn, *tls.Conn) {
	t.Helper()
	a, b := loopbackPair(t)
	cfg := clientTLS()
	cfg.MaxVersion = vers
	client := tls.Client(&holdConn{Conn: a}, cfg)
	server := tls.Server(b, serverTLS())
	handshakeBoth(t, server, client)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func handshakeBoth(t *testing.T, a, b *tls.Conn) {
	t.Helper()
	if err := handshakeTLS(a, b); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
}

// handshakeTLS runs both ends' handshakes at once, within 5 s.
func handshakeTLS(a, b *tls.Conn) error {
	for _, c := range []*tls.Conn{a, b} {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Handshake() }()
	err := b.Handshake()
	if aerr := <-errc; err == nil {
		err = aerr
	}
	for _, c := range []*tls.Conn{a, b} {
		_ = c.SetDeadline(time.Time{})
	}
	return err
}

func readFull(t *testing.T, c *tls.Conn, p []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for got := 0; got < len(p); {
		n, err := c.Read(p[got:])
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got += n
	}
	_ = c.SetReadDeadline(time.Time{})
}

// holdConn gathers writes between start and flush, and sends them in one.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  []byte
}

func (c *holdConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *holdConn) start() {
	c.mu.Lock()
	c.hold = true
	c.mu.Unlock()
}

func (c *holdConn) flush(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	// CloseWrite leaves an expired write deadline behind.
	_ = c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Conn.Write(c.buf); err != nil {
		t.Fatalf("flush: %v", err)
	}
	c.buf = nil
}

var (
	certOnce sync.Once
	testCert tls.Certificate
	testPool *x509.CertPool
)

// selfSigned makes one certificate for "relay.test" per test binary.
func selfSigned() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relay.test"},
		DNSNames:     []string{"relay.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, _ := x509.ParseCertificate(der)
	testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	testPool = x509.NewCertPool()
	testPool.AddCert(cert)
}

func serverTLS() *tls.Config {
	certOnce.Do(selfSigned)
	return &tls.Config{Certificates: []tls.Certificate{testCert}}
}

func clientTLS() *tls.Config {
	certOnce.Do(selfSigned)
	return &tls.Config{RootCAs: testPool, ServerName: "relay.test"}
}
