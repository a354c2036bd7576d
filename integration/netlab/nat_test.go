package netlab

import (
	"testing"
	"time"
)

// TestNATKeepalive idles a client behind a NAT that forgets a mapping
// after natTimeout of silence for 3x that timeout; then the backend pushes
// a message. With relay pings every 2 s the mapping stays and the message
// arrives. The control run has pings off and is otherwise the same: TCP
// keepalive is off on caddy's listener (keepalive_interval -1s) and on
// the client's socket in both runs, so the pings are the only thing that
// differs. There the mapping expires, the push never arrives, and the
// client sees nothing at all (no close, no error).
func TestNATKeepalive(t *testing.T) {
	t.Parallel()
	requireLab(t, "conntrack")
	for _, tc := range []struct {
		name     string
		relay    []string
		wantPush bool
	}{
		{"pings_2s", relayPings, true},
		{"control_pings_off", relayNoPings, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, labOpts{NATTimeout: natTimeout}, caddyOpts{Relay: tc.relay, Servers: noTCPKeepalive})
			c := s.Connect(t, roleConfig{URL: relayURL("/nat"), KeepAlive: "off"})
			idleFrom := time.Now()
			time.Sleep(3 * natTimeout)
			mappings := s.Mappings(caddyPort)
			s.Backend.Do("send late")
			pushed := time.Now()
			pings := c.Count(is("ping"))
			if tc.wantPush {
				ev := c.Wait(3*time.Second, "the late message", msg("late"))
				t.Logf("NAT timeout %v, idle %s: the push arrived %s after it was sent; the client answered %d relay pings; NAT mappings at the push: %d",
					natTimeout, since(idleFrom, pushed), since(pushed, ev.At()), pings, mappings)
				if mappings == 0 {
					t.Errorf("the NAT has no mapping for the connection although the push got through")
				}
				return
			}
			// The control: 6 s is twice the margin NETLAB.md asks for.
			wait := 6 * time.Second
			if ev, ok := c.Within(wait, msg("late")); ok {
				t.Fatalf("control: the push arrived %s after it was sent although pings were off; the NAT did not forget", since(pushed, ev.At()))
			}
			if ev, ok := c.Find(is("closed")); ok {
				t.Errorf("control: the client saw its connection end (%+v); an expired NAT mapping should leave it silent", ev)
			}
			if pings > 0 {
				t.Errorf("control: the client got %d pings with ping_interval off", pings)
			}
			if mappings != 0 {
				t.Errorf("control: the NAT still had %d mappings after %s idle (timeout %v)", mappings, since(idleFrom, pushed), natTimeout)
			}
			t.Logf("control: NAT timeout %v, idle %s: NAT mappings at the push: %d; no push, no close and no error at the client within %v",
				natTimeout, since(idleFrom, pushed), mappings, wait)
		})
	}
}
