package netlab

import (
	"fmt"
	"testing"
	"time"
)

// Relay options shared by the scenarios: pings well inside the NAT
// timeout (2 s against 6 s), or none at all.
var (
	relayPings   = []string{"ping_interval 2s", "pong_timeout 2s"}
	relayNoPings = []string{"ping_interval off"}
)

// Caddy listener options: TCP keepalive off, so that only WebSocket pings
// can keep a NAT mapping or an L7 hop alive.
var noTCPKeepalive = []string{"keepalive_interval -1s"}

// relayURL is the WebSocket URL of caddy as the client sees it.
func relayURL(path string) string {
	return fmt.Sprintf("ws://%s:%d%s", serverIP, caddyPort, path)
}

// stack is one lab with caddy and a backend running in its server
// namespace.
type stack struct {
	*lab
	Caddy   *caddyProc
	Backend *peer
}

// startStack creates a lab and starts the backend and caddy in it.
func startStack(t *testing.T, lo labOpts, co caddyOpts) *stack {
	t.Helper()
	l := newLab(t, lo)
	s := &stack{lab: l}
	s.Backend = startRole(t, l.Server, "backend", roleConfig{Listen: fmt.Sprintf("127.0.0.1:%d", backendPort)})
	s.Backend.Wait(10*time.Second, "listening", is("listening"))
	s.Caddy = startCaddy(t, l, co)
	return s
}

// Connect starts a client role in the client namespace, waits until it
// and the backend see the connection open, and has one message echoed so
// that both legs carried traffic. It returns when the echo arrived.
func (s *stack) Connect(t *testing.T, cfg roleConfig) *peer {
	t.Helper()
	c := startRole(t, s.Client, "client", cfg)
	c.Wait(15*time.Second, "open", is("open"))
	s.Backend.Wait(5*time.Second, "open", is("open"))
	if !cfg.NoRead {
		c.Do("send hello")
		c.Wait(5*time.Second, "echo", msg("hello"))
	}
	return c
}

// since formats the time from t0 to t1 for the timings in the test log:
// to the millisecond, or to 10 µs below 10 ms.
func since(t0, t1 time.Time) string {
	d := t1.Sub(t0)
	if d > -10*time.Millisecond && d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
