package wsrelay

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

func upgradeRequestFor(ctx context.Context) *http.Request {
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	return r
}

// TestFailedUpgradeMarkKept: an upstream whose upgrade failed is tried
// last for the next 5 s, even when another upgrade's dial of it connects
// meanwhile: only a valid answer clears the mark (a dial that connected
// did, and new clients waited a handshake_timeout on it again).
func TestFailedUpgradeMarkKept(t *testing.T) {
	certSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer certSrv.Close()
	tc := &tls.Config{Certificates: certSrv.TLS.Certificates}
	var n atomic.Int32
	hold := make(chan struct{})
	defer close(hold)
	// TLS, then never an answer; its second connection's TLS is slow.
	broken := stubServe(t, func(c net.Conn) {
		defer c.Close()
		if n.Add(1) == 2 {
			time.Sleep(600 * time.Millisecond)
		}
		s := tls.Server(c, tc)
		_ = s.Handshake()
		<-hold
	})
	good := httptest.NewServer(http.NotFoundHandler()) // answers 404: a refusal passed on, not a failure
	defer good.Close()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Options: relayconfig.Options{
		Upstreams:             []string{"wss://" + broken, good.Listener.Addr().String()},
		LBPolicy:              &relayconfig.LBPolicy{Policy: "first"},
		TLSInsecureSkipVerify: true,
		HandshakeTimeout:      caddy.Duration(300 * time.Millisecond),
		DrainPeriod:           -1,
	}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	var wg sync.WaitGroup
	var upstreamOf [2]string
	for i := range 2 { // B at 0 ms, A at 50 ms
		time.Sleep(50 * time.Millisecond * time.Duration(i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := upgradeRequestFor(context.Background())
			d, held, err := h.connect(r, r, false)
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			upstreamOf[i] = d.upstream.Raw
			d.conn.Close()
			held.release()
		}()
	}
	// B's upgrade on upstream 0 fails at ~300 ms and marks it; A's
	// dial of it connects at ~650 ms.
	time.Sleep(800 * time.Millisecond)
	o := h.pool.order(nil, now())
	t.Logf("order 500 ms after upstream 0's upgrade failed: %v", o)
	if !slices.Equal(o, []int{1, 0}) {
		t.Errorf("upstream 0's upgrade failed 0.5 s ago, yet it is first again: order %v (want it last for 5 s)", o)
	}
	wg.Wait()
}

// TestInvalidHostTriesNext: an invalid Host that header_up makes from
// one upstream's placeholders (a Unix socket's path) fails that upgrade
// without marking the upstream, and the next upstream is tried.
func TestInvalidHostTriesNext(t *testing.T) {
	sock := serveOn(t, "unix", filepath.Join(t.TempDir(), "s.sock"), func(c net.Conn) { c.Close() })
	good := httptest.NewServer(http.NotFoundHandler()) // a refusal, passed on
	defer good.Close()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Options: relayconfig.Options{
		Upstreams:   []string{"unix/" + sock, good.Listener.Addr().String()},
		LBPolicy:    &relayconfig.LBPolicy{Policy: "first"},
		HeaderUp:    &relayconfig.HeaderOps{Set: map[string][]string{"Host": {"{http.reverse_proxy.upstream.hostport}"}}},
		DrainPeriod: -1,
	}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	for range 2 {
		r := upgradeRequestFor(context.Background())
		d, held, err := h.connect(r, r, false)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		if d.upstream.Raw != h.Upstreams[1] || d.resp.StatusCode != http.StatusNotFound {
			t.Fatalf("answered by %s with %d, want the second upstream's 404", d.upstream.Raw, d.resp.StatusCode)
		}
		d.resp.Body.Close()
		putAnswerReader(d.br)
		d.conn.Close()
		held.release()
	}
	if o := h.pool.order(nil, now()); o[0] != 0 {
		t.Fatalf("order %v: the Unix socket upstream was marked failed for its Host", o)
	}
}
