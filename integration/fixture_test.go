package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	gws "github.com/gorilla/websocket"
)

// Keepalive timings of most tests: short, so that dead clients are found
// within seconds.
const (
	pingInterval = time.Second
	pongTimeout  = time.Second
)

// relayConf is the websocket_relay part of a test site.
type relayConf struct {
	// Upstream overrides the app's address as the relay's upstream.
	Upstream string
	// Options are extra subdirective lines; ping_interval and pong_timeout
	// are set to 1s unless Options sets them.
	Options []string
	// Admin turns caddy's admin API on.
	Admin bool
	// Servers is the body of caddy's global `servers` block.
	Servers string
}

// fixture is an app backend behind a caddy that relays its upgrades.
type fixture struct {
	App   *app
	Caddy *caddyProc
	Conf  relayConf
}

// relaySites renders the two site blocks (http and https) that relay
// upgrades to upstream and send everything else to reverse_proxy.
func relaySites(c *caddyProc, appAddr string, rc relayConf) string {
	up := rc.Upstream
	if up == "" {
		up = appAddr
	}
	opts := rc.Options
	joined := strings.Join(opts, "\n")
	if !strings.Contains(joined, "ping_interval") {
		opts = append(opts, "ping_interval 1s")
	}
	if !strings.Contains(joined, "pong_timeout") {
		opts = append(opts, "pong_timeout 1s")
	}
	body := fmt.Sprintf(`	websocket_relay %s {
		%s
	}
	reverse_proxy %s
`, up, strings.Join(opts, "\n\t\t"), appAddr)
	return fmt.Sprintf("http://:%d {\n%s}\n\nhttps://localhost:%d {\n\ttls internal\n%s}\n",
		c.HTTPPort, body, c.HTTPSPort, body)
}

// startRelay starts an app and a caddy that fronts it on ws and wss.
func startRelay(t *testing.T, ao appOpts, rc relayConf) *fixture {
	t.Helper()
	a := newApp(t, ao)
	c := newCaddy(t, caddyOpts{Admin: rc.Admin, Servers: rc.Servers})
	c.Start(relaySites(c, a.Addr, rc))
	return &fixture{App: a, Caddy: c, Conf: rc}
}

// URL returns the ws:// or wss:// URL of path on the relay.
func (f *fixture) URL(secure bool, path string) string {
	if secure {
		return f.Caddy.WSSURL() + path
	}
	return f.Caddy.WSURL() + path
}

// dialCoder opens a coder/websocket connection through the relay.
func (f *fixture) dialCoder(t *testing.T, secure bool, path string, opts *cws.DialOptions) (*cws.Conn, *http.Response) {
	t.Helper()
	if opts == nil {
		opts = &cws.DialOptions{}
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = f.Caddy.HTTPClient()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := cws.Dial(ctx, f.URL(secure, path), opts)
	if err != nil {
		t.Fatalf("coder/websocket dial %s: %v (response %v)", f.URL(secure, path), err, statusOf(resp))
	}
	conn.SetReadLimit(-1)
	t.Cleanup(func() { conn.CloseNow() })
	return conn, resp
}

// dialGorilla opens a gorilla/websocket connection through the relay.
func (f *fixture) dialGorilla(t *testing.T, secure bool, path string, d *gws.Dialer, hdr http.Header) (*gws.Conn, *http.Response) {
	t.Helper()
	if d == nil {
		d = &gws.Dialer{}
	}
	d.HandshakeTimeout = 10 * time.Second
	if secure {
		d.TLSClientConfig = f.Caddy.TLSConfig()
	}
	conn, resp, err := d.Dial(f.URL(secure, path), hdr)
	if err != nil {
		t.Fatalf("gorilla/websocket dial %s: %v (response %v)", f.URL(secure, path), err, statusOf(resp))
	}
	t.Cleanup(func() { conn.Close() })
	return conn, resp
}

// statusOf renders a response's status for error messages.
func statusOf(resp *http.Response) string {
	if resp == nil {
		return "none"
	}
	return resp.Status
}

// schemes are the two ways to reach the relay.
var schemes = []struct {
	name   string
	secure bool
}{{"ws", false}, {"wss", true}}

// within fails the test unless ch delivers within d.
func within[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		var zero T
		return zero
	}
}
