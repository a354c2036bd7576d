package netlab

import (
	"testing"
	"time"
)

// TestClientStopsReading has the backend flood a client with 64 KiB
// binary messages. A client that never reads fills the socket buffers
// (its receive buffer, caddy's send buffer); the relay's next write to it
// then cannot finish, and write_timeout (3 s) after that stall the relay
// drops it and the backend gets close 1001, while caddy's memory stays
// bounded: the relay streams frames and buffers nothing per message. The
// control client reads everything: the same flood runs through the whole
// window without a close. Relay pings are off here, so the write timeout
// is the only way the relay can give up.
func TestClientStopsReading(t *testing.T) {
	t.Parallel()
	requireLab(t)
	const (
		writeTimeout = 3 * time.Second
		floodMsg     = 64 << 10
		rssCeiling   = 64 << 20
		// window bounds the wait for the drop: buffers fill within a
		// second here, then write_timeout, then a margin of 3 s.
		window = time.Second + writeTimeout + 3*time.Second
	)
	for _, tc := range []struct {
		name     string
		noRead   bool
		wantDrop bool
	}{
		{"stops_reading", true, true},
		{"control_keeps_reading", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, labOpts{}, caddyOpts{Relay: []string{"ping_interval off", "write_timeout 3s"}})
			c := s.Connect(t, roleConfig{URL: relayURL("/flood"), NoRead: tc.noRead})
			base := s.Caddy.RSS()
			peak := base
			s.Backend.Do("flood %d", floodMsg)
			start := time.Now()
			var closed event
			dropped := false
			for time.Since(start) < window {
				peak = max(peak, s.Caddy.RSS())
				if closed, dropped = s.Backend.Find(is("closed")); dropped {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !dropped {
				peak = max(peak, s.Caddy.RSS())
			}
			growth := peak - base
			if growth > rssCeiling {
				t.Errorf("caddy's RSS grew by %d MiB during the flood (from %d MiB to %d MiB), want less than %d MiB",
					growth>>20, base>>20, peak>>20, rssCeiling>>20)
			}
			if !tc.wantDrop {
				if dropped {
					t.Fatalf("control: the relay closed the connection of a client that reads (%+v)", closed)
				}
				mark := s.Backend.Mark()
				s.Backend.Do("stats")
				st := s.Backend.WaitAfter(mark, 5*time.Second, "stats", is("stats"))
				bin, _ := lastEvent(c, is("bin"))
				if bin.N < 8<<20 {
					t.Errorf("control: the reading client got only %d bytes in %v", bin.N, window)
				}
				t.Logf("control: a reading client stayed for %v of flood: backend wrote %d MiB, client read %d MiB; caddy RSS %d MiB -> peak %d MiB (growth %.1f MiB, ceiling %d MiB)",
					window, st.N>>20, bin.N>>20, base>>20, peak>>20, float64(growth)/(1<<20), rssCeiling>>20)
				return
			}
			if !dropped {
				t.Fatalf("the relay did not drop a client that stopped reading within %v of flood; backend events:\n%s", window, s.Backend.History())
			}
			if closed.Code != 1001 {
				t.Errorf("the backend got close %d (%s), want 1001", closed.Code, closed.Err)
			}
			// The backend's longest write is the stall: while the relay's
			// write to the client was stuck, it read nothing from the
			// backend, and it read again (dropping what the client can no
			// longer get) once it gave the client up. So the stall lasts
			// write_timeout. The 1001 reaches the backend soon after, when
			// the backend's reader gets to it; under load that can lag.
			end := s.Backend.Wait(10*time.Second, "the end of the flood", is("flood_end"))
			stall := time.Unix(0, end.Last)
			longest, err := time.ParseDuration(end.Data)
			if err != nil {
				t.Fatalf("flood_end: longest write %q: %v", end.Data, err)
			}
			if longest > writeTimeout+time.Second || longest < writeTimeout-time.Second {
				t.Errorf("the relay stopped reading the backend for %v while its write to the client was stuck, want write_timeout %v (+-1s)", longest, writeTimeout)
			}
			if after := closed.At().Sub(stall); after > writeTimeout+3*time.Second {
				t.Errorf("the backend got 1001 %s after the flood stalled, want it within write_timeout %v + 3s", since(stall, closed.At()), writeTimeout)
			}
			line := s.Caddy.WaitConnClosed(5 * time.Second)
			if line.Str("cause") != "write timeout" || line.Num("close_code") != 1001 {
				t.Errorf("the relay logged %s, want cause \"write timeout\" and close_code 1001", line)
			}
			t.Logf("flood stalled %s after it began (the backend's longest write: %s); the relay took %.1f MiB from the backend (what it could not write to the client it dropped once it gave the client up); close 1001 at the backend %s after the stall, %s after the flood began; relay cause %q; caddy RSS %d MiB -> peak %d MiB (growth %.1f MiB, ceiling %d MiB)",
				since(start, stall), end.Data, line.Num("backend_to_client_bytes")/(1<<20), since(stall, closed.At()), since(start, closed.At()), line.Str("cause"),
				base>>20, peak>>20, float64(growth)/(1<<20), rssCeiling>>20)
		})
	}
}

// lastEvent returns the last event so far that matches.
func lastEvent(p *peer, match func(event) bool) (event, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.events) - 1; i >= 0; i-- {
		if match(p.events[i]) {
			return p.events[i], true
		}
	}
	return event{}, false
}
