package wsrelay

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// TestTryAgainNotForInvalidHost: an invalid Host that
// header_up makes (here from a Unix socket upstream's address) is the
// request's own, as a stream's 2xx is the path's: every try fails the
// same, so lb_try_duration must not hold the client for its whole
// length before the 502.
func TestTryAgainNotForInvalidHost(t *testing.T) {
	sock := serveOn(t, "unix", filepath.Join(t.TempDir(), "s.sock"), func(c net.Conn) { c.Close() })
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{Options: relayconfig.Options{
		Upstreams:   []string{"unix/" + sock},
		HeaderUp:    &relayconfig.HeaderOps{Set: map[string][]string{"Host": {"{http.reverse_proxy.upstream.hostport}"}}},
		TryDuration: caddy.Duration(2 * time.Second),
		TryInterval: caddy.Duration(50 * time.Millisecond),
		DrainPeriod: -1,
	}}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	r := upgradeRequestFor(context.Background())
	start := time.Now()
	_, _, err := h.connect(r, r, false)
	var failed *errConnect
	if !errors.As(err, &failed) {
		t.Fatalf("connect: %v, want a failed connect", err)
	}
	t.Logf("after %s, %d tries: %v", time.Since(start).Round(time.Millisecond), failed.tries, err)
	if failed.tries != 1 || time.Since(start) > time.Second {
		t.Errorf("an invalid Host from header_up was tried %d times over %s (lb_try_duration 2s): no try can do better", failed.tries, time.Since(start).Round(time.Millisecond))
	}
}
