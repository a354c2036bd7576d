package keepalive

import (
	"testing"
	"time"
)

func TestMonitor(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	p := Policy{Interval: 25 * time.Second, Timeout: 20 * time.Second}

	type step struct {
		now, lastSeen float64
		written       float64 // >0: report PingWritten at this time after a Ping
		want          Action
		wantAt        float64 // for Wait
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"active client is never pinged", []step{
			{now: 10, lastSeen: 9, want: Wait, wantAt: 34},
			{now: 34, lastSeen: 30, want: Wait, wantAt: 55},
		}},
		{"idle client is pinged after the interval", []step{
			{now: 24.9, lastSeen: 0, want: Wait, wantAt: 25},
			{now: 25, lastSeen: 0, want: Ping, written: 25},
			{now: 30, lastSeen: 0, want: Wait, wantAt: 45},
		}},
		{"unanswered ping is dead at the timeout", []step{
			{now: 25, lastSeen: 0, want: Ping, written: 25},
			{now: 44.9, lastSeen: 0, want: Wait, wantAt: 45},
			{now: 45, lastSeen: 0, want: Dead},
		}},
		{"timeout runs from when the ping was written", []step{
			{now: 25, lastSeen: 0, want: Ping, written: 40},
			{now: 50, lastSeen: 0, want: Wait, wantAt: 60},
			{now: 60, lastSeen: 0, want: Dead},
		}},
		{"any frame answers the ping", []step{
			{now: 25, lastSeen: 0, want: Ping, written: 25},
			{now: 45, lastSeen: 26, want: Wait, wantAt: 51},
			{now: 51, lastSeen: 26, want: Ping, written: 51},
		}},
		{"timeout longer than the interval keeps the ping period", []step{
			{now: 25, lastSeen: 0, want: Ping, written: 25},
		}},
		{"frame at the instant of the ping counts", []step{
			{now: 25, lastSeen: 0, want: Ping, written: 25},
			{now: 45, lastSeen: 25, want: Wait, wantAt: 50},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMonitor(p)
			for i, s := range tc.steps {
				got, gotAt := m.Next(at(s.now), at(s.lastSeen))
				if got != s.want {
					t.Fatalf("step %d: Next = %v, want %v", i, got, s.want)
				}
				if got == Wait && !gotAt.Equal(at(s.wantAt)) {
					t.Fatalf("step %d: wait until %v, want %v", i, gotAt.Sub(t0), at(s.wantAt).Sub(t0))
				}
				if got == Ping && s.written > 0 {
					m.PingWritten(at(s.written))
					if !m.Outstanding() {
						t.Fatalf("step %d: ping not outstanding after PingWritten", i)
					}
				}
			}
		})
	}
}

func TestLongTimeout(t *testing.T) {
	t0 := time.Unix(0, 0)
	m := NewMonitor(Policy{Interval: time.Second, Timeout: 5 * time.Second})
	if a, _ := m.Next(t0.Add(time.Second), t0); a != Ping {
		t.Fatalf("Next = %v, want ping", a)
	}
	m.PingWritten(t0.Add(time.Second))
	a, at := m.Next(t0.Add(1100*time.Millisecond), t0)
	if a != Wait || !at.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("Next = %v until %v, want wait until 2s", a, at.Sub(t0))
	}
	// Answered at 1.2s: the next ping is due at 2.2s, not at the 6s deadline.
	a, at = m.Next(t0.Add(2*time.Second), t0.Add(1200*time.Millisecond))
	if a != Wait || !at.Equal(t0.Add(2200*time.Millisecond)) {
		t.Fatalf("Next = %v until %v, want wait until 2.2s", a, at.Sub(t0))
	}
	// Unanswered: after 2s it waits for the deadline, then it is dead.
	m2 := NewMonitor(Policy{Interval: time.Second, Timeout: 5 * time.Second})
	m2.Next(t0.Add(time.Second), t0)
	m2.PingWritten(t0.Add(time.Second))
	if a, at := m2.Next(t0.Add(2*time.Second), t0); a != Wait || !at.Equal(t0.Add(6*time.Second)) {
		t.Fatalf("Next = %v until %v, want wait until 6s", a, at.Sub(t0))
	}
	if a, _ := m2.Next(t0.Add(6*time.Second), t0); a != Dead {
		t.Fatalf("Next = %v, want dead", a)
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Wait: "wait", Ping: "ping", Dead: "dead", 9: "unknown"} {
		if a.String() != want {
			t.Errorf("%d.String() = %q, want %q", a, a.String(), want)
		}
	}
}
