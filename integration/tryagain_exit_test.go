package integration

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	cws "github.com/coder/websocket"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// TestTryAgainWaitEndsOnExit: an HTTP/1.1 upgrade waiting for its next
// lb_try_interval (its only upstream down, lb_try_duration 20s) stops
// waiting when Caddy exits. On exit (SIGTERM) Caddy first shuts its
// servers down with an eternal grace period, which waits for the
// handler, and only then runs Cleanup (which closes registry.closed):
// the wait looks for the exit itself (before, it and the exit lasted
// the whole lb_try_duration).
func TestTryAgainWaitEndsOnExit(t *testing.T) {
	t.Parallel()
	c := waitingCaddy(t)
	f := &fixture{Caddy: c}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, _, err := cws.Dial(ctx, f.URL(false, "/wait/echo"), &cws.DialOptions{HTTPClient: c.HTTPClient()})
		if err == nil {
			conn.CloseNow()
		}
	}()
	time.Sleep(700 * time.Millisecond) // the upgrade is in its waits now
	start := time.Now()
	c.Signal(syscall.SIGTERM)
	if !c.WaitExit(8 * time.Second) {
		c.WaitExit(30 * time.Second)
		t.Fatalf("caddy exited %s after SIGTERM: an upgrade waiting for lb_try_duration (20s) held the exit", time.Since(start).Round(100*time.Millisecond))
	}
}

// TestTryAgainClientGoneHTTP1: an HTTP/1.1 client that hangs up
// while its upgrade waits for the next try ends the wait at once.
func TestTryAgainClientGoneHTTP1(t *testing.T) {
	t.Parallel()
	c := waitingCaddy(t)
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c.HTTPPort))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /wait/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	time.Sleep(500 * time.Millisecond)
	conn.Close()
	gone := time.Now()
	waitUntil(t, 5*time.Second, "the wait's end on the client's leaving", func() bool {
		return len(c.Logs(func(e rt.LogEntry) bool {
			return strings.Contains(e.Str("msg"), "client went away")
		})) > 0
	})
	t.Logf("ended %s after the client left", time.Since(gone))
}

// waitingCaddy starts a caddy whose /wait/* relays to an upstream that
// is down, trying again every 100 ms for 20 s.
func waitingCaddy(t *testing.T) *caddyProc {
	t.Helper()
	down := freeAddr(t)
	c := newCaddy(t, caddyOpts{})
	c.Start(fmt.Sprintf(`http://:%d {
	websocket_relay /wait/* %s {
		lb_try_duration 20s
		lb_try_interval 100ms
	}
}
`, c.HTTPPort, down))
	return c
}
