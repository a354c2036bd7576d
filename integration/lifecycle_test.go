package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

// liveConn is a client connection kept reading in the background, with
// the backend side of it.
type liveConn struct {
	name    string
	conn    *cws.Conn
	bc      *backendConn
	readErr chan error
	endedAt time.Time // when the client's read ended; set before readErr
}

// openLive opens perScheme coder clients per scheme and keeps each
// reading, so that pings are answered and a close frame is seen when it
// comes.
func openLive(t *testing.T, f *fixture, perScheme int) []*liveConn {
	t.Helper()
	var out []*liveConn
	for i := 0; i < perScheme*len(schemes); i++ {
		sc := schemes[i%len(schemes)]
		path := fmt.Sprintf("/echo/live-%d", i)
		conn, _ := f.dialCoder(t, sc.secure, path, nil)
		bc := f.App.accept(t, path)
		echoOnce(t, conn, "hello "+sc.name)
		lc := &liveConn{name: path + " over " + sc.name, conn: conn, bc: bc, readErr: make(chan error, 1)}
		go func() {
			for {
				if _, _, err := conn.Read(context.Background()); err != nil {
					lc.endedAt = time.Now()
					lc.readErr <- err
					return
				}
			}
		}()
		out = append(out, lc)
	}
	return out
}

// expectClosed wants close code on both legs of every connection within d.
func expectClosed(t *testing.T, conns []*liveConn, code cws.StatusCode, d time.Duration) {
	t.Helper()
	for _, lc := range conns {
		err := within(t, lc.readErr, d, lc.name+": client waiting for a close frame")
		if got := cws.CloseStatus(err); got != code {
			t.Errorf("%s: client got %v (status %d), want close %d", lc.name, err, got, code)
		}
		rec := lc.bc.waitClosed(t, d)
		if rec.Code != int(code) {
			t.Errorf("%s: backend got close %d (%v), want %d", lc.name, rec.Code, rec.Err, code)
		}
	}
}

// TestShutdown stops caddy with SIGTERM while connections are live: the
// client and the backend both get close 1001, and caddy exits.
func TestShutdown(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	conns := openLive(t, f, 1)
	f.Caddy.Signal(syscall.SIGTERM)
	// On exit the relay closes at once: no drain period.
	expectClosed(t, conns, cws.StatusGoingAway, 5*time.Second)
	if !f.Caddy.WaitExit(15 * time.Second) {
		t.Errorf("caddy still running 15s after SIGTERM")
	}
	for _, e := range f.Caddy.ConnClosedLogs() {
		checkConnLog(t, e, connLogWant{ClosedBy: "relay", CloseCode: 1001})
	}
	if n := len(f.Caddy.ConnClosedLogs()); n != len(conns) {
		t.Errorf("%d connection closed lines for %d connections:\n%s", n, len(conns), f.Caddy.relayLines())
	}
}

// TestReload loads a changed config through the admin API while
// connections are live: both legs get close 1012 (service restart), the
// closes are spread over drain_period rather than sent in one burst, and
// new connections work under the new config.
func TestReload(t *testing.T) {
	t.Parallel()
	const drain = 2 * time.Second
	f := startRelay(t, appOpts{}, relayConf{Admin: true, Options: []string{"drain_period 2s"}})
	conns := openLive(t, f, 3)

	changed := f.Conf
	changed.Options = []string{"drain_period 2s", "ping_interval 2s"}
	cfg := f.Caddy.adapt(f.Caddy.Caddyfile(relaySites(f.Caddy, f.App.Addr, changed)))
	start := time.Now()
	f.Caddy.load(t, cfg)

	expectClosed(t, conns, cws.StatusServiceRestart, drain+5*time.Second)
	first, last := conns[0].endedAt, conns[0].endedAt
	for _, lc := range conns {
		if lc.endedAt.Before(first) {
			first = lc.endedAt
		}
		if lc.endedAt.After(last) {
			last = lc.endedAt
		}
	}
	t.Logf("%d closes from %v to %v after the load", len(conns), first.Sub(start), last.Sub(start))
	if last.Sub(first) < drain/10 {
		t.Errorf("%d closes within %v of each other, want them spread over drain_period %v", len(conns), last.Sub(first), drain)
	}
	if last.Sub(start) > drain+2*time.Second {
		t.Errorf("last close %v after the load, want within drain_period %v (+2s)", last.Sub(start), drain)
	}
	for _, e := range f.Caddy.WaitConnClosed(len(conns)) {
		checkConnLog(t, e, connLogWant{ClosedBy: "relay", CloseCode: 1012})
	}
	for _, sc := range schemes {
		conn, _ := f.dialCoder(t, sc.secure, "/echo", nil)
		f.App.accept(t, "/echo")
		echoOnce(t, conn, "after reload")
		conn.Close(cws.StatusNormalClosure, "")
	}
}

// load posts a JSON config to caddy's admin API.
func (c *caddyProc) load(t *testing.T, cfg []byte) {
	t.Helper()
	if c.AdminPort == 0 {
		t.Fatal("load needs the admin API")
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/load", c.AdminPort)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(cfg))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	cl := &http.Client{Timeout: 60 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, body)
	}
}
