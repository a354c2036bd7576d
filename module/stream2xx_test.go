package wsrelay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// TestStream2xxMarksNoUpstream: a stream client asking a path that the
// app serves as a page (200) gets one 502: the path's answer, not an
// upstream's failure. Every upstream was asked in turn and marked failed
// for 5 s, one warn line each, which moved other users' cookie clients
// off their upstream.
func TestStream2xxMarksNoUpstream(t *testing.T) {
	var asked atomic.Int32
	page := func() string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked.Add(1)
			w.Write([]byte("a page"))
		}))
		t.Cleanup(s.Close)
		return s.Listener.Addr().String()
	}
	a, b, c := page(), page(), page()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Options: relayconfig.Options{Upstreams: []string{a, b, c},
		LBPolicy: &relayconfig.LBPolicy{Policy: "cookie", Fallback: &relayconfig.LBPolicy{Policy: "first"}}, DrainPeriod: -1}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	r := httptest.NewRequest(http.MethodConnect, "/index.html", nil)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	r.Header.Set(":protocol", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	_, _, err := h.connect(r, upgrade.AsUpgrade(r, upgrade.NewKey()), true)
	t.Logf("connect: %v", err)
	h.pool.mu.Lock()
	marked := len(h.pool.failures)
	h.pool.mu.Unlock()
	if asked.Load() != 1 || marked != 0 {
		t.Errorf("one stream request for a page: %d backend requests, %d of 3 upstreams marked failed (want 1 and 0: the path's answer, not an upstream failure)", asked.Load(), marked)
	}
}
