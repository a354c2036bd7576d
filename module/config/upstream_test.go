package relayconfig

import "testing"

func TestParseUpstream(t *testing.T) {
	tests := []struct {
		in      string
		addr    string
		network string
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
		{in: "unix//run/app.sock", addr: "/run/app.sock", network: "unix"},
		{in: "unix/app.sock", addr: "app.sock", network: "unix"},
		{in: "unix/", wantErr: true},
		{in: "localhost:3000/ws", wantErr: true},
		{in: "localhost:3000?x=1", wantErr: true},
		{in: "localhost:0", wantErr: true},
		{in: "localhost:65536", wantErr: true},
		{in: "localhost:http", wantErr: true},
		{in: ":3000", addr: ":3000"}, // the local system, as Go dials it
		{in: "ws://app:99999", wantErr: true},
		{in: "ws://app:0/x", wantErr: true},
		{in: "localhost:65535", addr: "localhost:65535"},
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
			if tc.network == "" {
				tc.network = "tcp"
			}
			if u.Addr != tc.addr || u.Network != tc.network || u.TLS != tc.tls || u.Path != tc.path {
				t.Fatalf("got %+v", u)
			}
		})
	}
}
