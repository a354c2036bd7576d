package netlab

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestL7HopKeepalive puts a private nginx (proxy_read_timeout 5s) between
// the client and caddy: client -> NAT -> nginx -> caddy -> backend. The
// NAT keeps the kernel's long conntrack timeout here, so only nginx can
// cut the connection. With relay pings every 2 s the connection outlives
// 15 s of idleness (three of nginx's timeouts; its timer restarts on any
// traffic, so three windows show as much as thirty seconds would) and a
// late push arrives. Without pings nginx cuts it after 5 s, whether TCP
// keepalive runs every second on every hop (caddy's listener, the
// client's socket and nginx's listener) or nowhere: kernel keepalives
// never reach an L7 hop's idle timer.
func TestL7HopKeepalive(t *testing.T) {
	t.Parallel()
	requireLab(t, "nginx", "ss")
	const idle = 3 * nginxReadTimeout
	for _, tc := range []struct {
		name         string
		relay        []string
		tcpKeepalive bool
		wantAlive    bool
	}{
		{"pings_2s", relayPings, false, true},
		{"control_pings_off_tcp_keepalive_1s", relayNoPings, true, false},
		{"control_pings_off_tcp_keepalive_off", relayNoPings, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			servers, clientKA := noTCPKeepalive, "off"
			if tc.tcpKeepalive {
				servers, clientKA = []string{"keepalive_idle 1s", "keepalive_interval 1s"}, "1s"
			}
			s := startStack(t, labOpts{}, caddyOpts{Relay: tc.relay, Servers: servers})
			startNginx(t, s.lab, tc.tcpKeepalive)
			c := s.Connect(t, roleConfig{URL: fmt.Sprintf("ws://%s:%d/l7", serverIP, nginxPort), KeepAlive: clientKA})
			idleFrom := time.Now()
			if tc.tcpKeepalive {
				// Once the last segments are acknowledged, ss shows the
				// keepalive timer instead of the retransmission timer.
				time.Sleep(1500 * time.Millisecond)
				checkKeepaliveTimers(t, s.lab)
			}
			ev, cut := c.Within(idle-time.Since(idleFrom), is("closed"))
			if tc.wantAlive {
				if cut {
					t.Fatalf("nginx cut the connection %s into the idle time despite relay pings: %+v", since(idleFrom, ev.At()), ev)
				}
				s.Backend.Do("send late")
				pushed := time.Now()
				got := c.Wait(3*time.Second, "the late message", msg("late"))
				t.Logf("nginx proxy_read_timeout %v, idle %s: the connection stayed; the push arrived %s after it was sent; the client answered %d relay pings",
					nginxReadTimeout, since(idleFrom, pushed), since(pushed, got.At()), c.Count(is("ping")))
				return
			}
			if !cut {
				t.Fatalf("control: nginx did not cut the connection in %v of idleness without pings", idle)
			}
			after := ev.At().Sub(idleFrom)
			if after < nginxReadTimeout-time.Second || after > nginxReadTimeout+3*time.Second {
				t.Errorf("control: the connection ended %s into the idle time, want about nginx's %v", since(idleFrom, ev.At()), nginxReadTimeout)
			}
			bev := s.Backend.Wait(5*time.Second, "the close", is("closed"))
			if bev.Code != 1001 {
				t.Errorf("control: the backend got close %d (%s), want 1001 from the relay", bev.Code, bev.Err)
			}
			line := s.Caddy.WaitConnClosed(5 * time.Second)
			t.Logf("control (TCP keepalive %v): nginx cut the connection %s after the last message (client: code %d, %s); backend got %d %s after the cut; relay logged closed_by %q cause %q",
				map[bool]string{true: "1s on every hop", false: "off"}[tc.tcpKeepalive], since(idleFrom, ev.At()), ev.Code, ev.Err,
				bev.Code, since(ev.At(), bev.At()), line.Str("closed_by"), line.Str("cause"))
		})
	}
}

// checkKeepaliveTimers shows with ss(8) that TCP keepalive is armed on
// the client's socket and on the server side of both hops (nginx's
// accepted socket and caddy's).
func checkKeepaliveTimers(t *testing.T, l *lab) {
	t.Helper()
	for _, c := range []struct {
		ns, filter string
		want       int
	}{
		{l.Client, fmt.Sprintf("dport = :%d", nginxPort), 1},
		{l.Server, fmt.Sprintf("sport = :%d or sport = :%d", nginxPort, caddyPort), 2},
	} {
		out := l.Exec(c.ns, nil, append([]string{"ss", "-tnoH", "state", "established"}, strings.Fields(c.filter)...)...)
		n := strings.Count(out, "timer:(keepalive")
		if n < c.want {
			t.Errorf("TCP keepalive armed on %d sockets in %s, want %d:\n%s", n, c.ns, c.want, out)
		}
		t.Logf("ss in %s: TCP keepalive armed on %d established sockets", c.ns, n)
	}
}
