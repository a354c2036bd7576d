package wsrelay

import (
	"testing"
	"time"
)

func TestParseUpstream(t *testing.T) {
	tests := []struct {
		in      string
		addr    string
		tls     bool
		path    string
		wantErr bool
	}{
		{in: "localhost:3000", addr: "localhost:3000"},
		{in: "[::1]:3000", addr: "[::1]:3000"},
		{in: "ws://app:8080", addr: "app:8080"},
		{in: "ws://app", addr: "app:80"},
		{in: "wss://app", addr: "app:443", tls: true},
		{in: "wss://app:8443/socket/", addr: "app:8443", tls: true, path: "/socket"},
		{in: "", wantErr: true},
		{in: "localhost", wantErr: true},
		{in: "http://app:80", wantErr: true},
		{in: "ws://:80", wantErr: true},
		{in: "ws://app:80/x?y=1", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			u, err := ParseUpstream(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error, got %+v", u)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Addr != tc.addr || u.TLS != tc.tls || u.Path != tc.path {
				t.Fatalf("got %+v", u)
			}
		})
	}
}

func TestPoolRoundRobinSkipsFailed(t *testing.T) {
	p := newUpstreamPool([]Upstream{{Raw: "a"}, {Raw: "b"}, {Raw: "c"}})
	t0 := time.Unix(100, 0)
	var firsts []int
	for i := 0; i < 3; i++ {
		firsts = append(firsts, p.order(t0)[0])
	}
	if firsts[0] == firsts[1] || firsts[1] == firsts[2] || firsts[0] == firsts[2] {
		t.Fatalf("not round-robin: %v", firsts)
	}
	p.markFailed(1, t0)
	for i := 0; i < 6; i++ {
		o := p.order(t0.Add(time.Second))
		if o[0] == 1 || o[len(o)-1] != 1 {
			t.Fatalf("failed upstream not last: %v", o)
		}
	}
	if o := p.order(t0.Add(failBackoff)); len(o) != 3 {
		t.Fatalf("order %v", o)
	}
	p.markHealthy(1)
	seen := map[int]bool{}
	for i := 0; i < 3; i++ {
		seen[p.order(t0)[0]] = true
	}
	if !seen[1] {
		t.Fatalf("healthy upstream never first again")
	}
}
