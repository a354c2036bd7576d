package netlab

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// activeMetric is the relay's gauge of connections being relayed now.
const activeMetric = "caddy_websocket_relay_active_connections"

// TestVanishedClient makes a connected client vanish as a phone leaving
// coverage does: right after its last message, the NAT drops every packet
// from and to it, without answering. With pings every 2 s (pong_timeout
// 2 s) the backend gets close 1001 within ping_interval + pong_timeout +
// 1 s of that last message, the relay logs "ping timeout", its active
// connections gauge (read from /metrics on the admin socket, with Caddy's
// HTTP metrics on as in production) drops back to 0, and caddy's socket
// to the client is no longer established. The control has pings off:
// caddy's TCP keepalive is at its default in both runs (15 s idle, then
// 9 probes 15 s apart, minutes in all), so within the same window plus
// 3 s nothing notices: no close at the backend, no log line, the gauge
// stays at 1.
func TestVanishedClient(t *testing.T) {
	t.Parallel()
	requireLab(t, "ss")
	const limit = 2*time.Second + 2*time.Second + time.Second // ping_interval + pong_timeout + 1 s
	for _, tc := range []struct {
		name      string
		relay     []string
		wantClose bool
	}{
		{"pings_2s", relayPings, true},
		{"control_pings_off", relayNoPings, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, labOpts{}, caddyOpts{Relay: tc.relay, Metrics: true})
			c := s.Connect(t, roleConfig{URL: relayURL("/vanish")})
			if n := s.Caddy.Metric(activeMetric); n != 1 {
				t.Fatalf("%s = %v with one client connected, want 1", activeMetric, n)
			}
			c.Do("send bye")
			last := s.Backend.Wait(5*time.Second, "the last message", msg("bye")).At()
			s.CutClient()
			t.Logf("the NAT drops the client's packets %s after its last message", since(last, time.Now()))
			if !tc.wantClose {
				wait := limit + 3*time.Second
				if ev, ok := s.Backend.Within(wait-time.Since(last), is("closed")); ok {
					t.Fatalf("control: the backend got close %d %s after the client vanished, with pings off", ev.Code, since(last, ev.At()))
				}
				if lines := s.Caddy.ConnClosed(); len(lines) > 0 {
					t.Errorf("control: the relay ended the connection: %s", lines[0])
				}
				n := s.Caddy.Metric(activeMetric)
				if n != 1 {
					t.Errorf("control: %s = %v, want 1: nothing should have noticed", activeMetric, n)
				}
				open := s.clientSockets()
				if open != 1 {
					t.Errorf("control: caddy has %d established client sockets, want 1", open)
				}
				t.Logf("control: %s after the client vanished: no close at the backend, no log line, %s = %v, caddy's socket to the client still established",
					since(last, time.Now()), activeMetric, n)
				return
			}
			ev := s.Backend.Wait(limit+3*time.Second, "the close", is("closed"))
			took := ev.At().Sub(last)
			if ev.Code != 1001 {
				t.Errorf("the backend got close %d (%s), want 1001", ev.Code, ev.Err)
			}
			if took > limit {
				t.Errorf("the backend got its close %s after the client's last message, want at most %v", since(last, ev.At()), limit)
			}
			line := s.Caddy.WaitConnClosed(2 * time.Second)
			if line.Str("cause") != "ping timeout" || line.Str("closed_by") != "relay" || line.Num("close_code") != 1001 {
				t.Errorf("the relay logged %s, want closed_by relay, cause \"ping timeout\", close_code 1001", line)
			}
			freed := waitMetric(t, s.Caddy, activeMetric, 0, 3*time.Second)
			if open := s.clientSockets(); open != 0 {
				t.Errorf("caddy still has %d established client sockets after the ping timeout, want 0", open)
			}
			t.Logf("close %d at the backend %s after the client's last message (limit %v); relay: cause %q, pings_sent %v; %s back to 0 %s after the last message",
				ev.Code, since(last, ev.At()), limit, line.Str("cause"), line.Num("pings_sent"), activeMetric, since(last, freed))
		})
	}
}

// clientSockets counts caddy's established TCP connections from clients.
func (s *stack) clientSockets() int {
	s.t.Helper()
	out := s.Exec(s.Server, nil, "ss", "-tnH", "state", "established", "sport", "=", fmt.Sprintf(":%d", caddyPort))
	return strings.Count(out, "\n")
}

// waitMetric polls metric until it equals want and returns when it did;
// it fails the test after d.
func waitMetric(t *testing.T, c *caddyProc, metric string, want float64, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := c.Metric(metric)
		if v == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after %v, want %v", metric, v, d, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
