package netlab

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestBackendCrash kills the backend process (SIGKILL) in the middle of a
// conversation: its kernel closes the socket, and the client must get
// close 1014 (bad gateway) from the relay within 1 s. The control freezes
// the backend instead (SIGSTOP): its socket stays open, and within the
// same second plus a 3 s margin the client gets no close, so the 1014
// comes from the backend's socket ending and from nothing else.
func TestBackendCrash(t *testing.T) {
	t.Parallel()
	requireLab(t)
	const limit = time.Second
	for _, tc := range []struct {
		name      string
		sig       syscall.Signal
		wantClose bool
	}{
		{"sigkill", syscall.SIGKILL, true},
		{"control_sigstop", syscall.SIGSTOP, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, labOpts{}, caddyOpts{Relay: relayPings})
			c := s.Connect(t, roleConfig{URL: relayURL("/crash")})
			for i := range 3 {
				m := fmt.Sprintf("message %d", i)
				c.Do("send %s", m)
				c.Wait(5*time.Second, "echo of "+m, msg(m))
			}
			c.Do("send unanswered")
			s.Backend.Wait(5*time.Second, "the last message", msg("unanswered"))
			sent := time.Now()
			s.Backend.proc.Signal(tc.sig)
			if !tc.wantClose {
				wait := limit + 3*time.Second
				if ev, ok := c.Within(wait, is("closed")); ok {
					t.Fatalf("control: the client got close %d %s after the backend was only stopped", ev.Code, since(sent, ev.At()))
				}
				if lines := s.Caddy.ConnClosed(); len(lines) > 0 {
					t.Errorf("control: the relay ended the connection: %s", lines[0])
				}
				t.Logf("control: backend stopped (SIGSTOP): no close at the client within %v", wait)
				return
			}
			ev := c.Wait(limit+3*time.Second, "the close", is("closed"))
			took := ev.At().Sub(sent)
			if ev.Code != 1014 {
				t.Errorf("the client got close %d (%s), want 1014", ev.Code, ev.Err)
			}
			if took > limit {
				t.Errorf("the client got its close %s after SIGKILL, want within %v", since(sent, ev.At()), limit)
			}
			line := s.Caddy.WaitConnClosed(5 * time.Second)
			if line.Str("closed_by") != "backend" || line.Num("close_code") != 1014 {
				t.Errorf("the relay logged %s, want closed_by backend and close_code 1014", line)
			}
			t.Logf("close %d %q at the client %s after SIGKILL to the backend (limit %v); relay: closed_by %q, cause %q",
				ev.Code, ev.Data, since(sent, ev.At()), limit, line.Str("closed_by"), line.Str("cause"))
		})
	}
}
