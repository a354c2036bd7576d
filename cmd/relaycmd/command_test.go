package relaycmd

import (
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"
)

func TestCommandRegistered(t *testing.T) {
	cmd, ok := caddycmd.Commands()["websocket-relay"]
	if !ok {
		t.Fatal("command websocket-relay is not registered")
	}
	for _, flag := range []string{"--from", "--to", "--ping-interval", "--pong-timeout", "--debug"} {
		if !strings.Contains(cmd.Usage, flag) {
			t.Errorf(
				"usage %q does not mention %s",
				cmd.Usage, flag)
		}
	}
}

func TestOptionsFromFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want options
	}{
		{
			name: "defaults",
			args: nil,
			want: options{From: DefaultFrom, PingInterval: 25 * time.Second, PongTimeout: 20 * time.Second},
		},
		{
			name: "repeated and comma-separated upstreams",
			args: []string{"--from", "https://localhost:8443", "--to", "localhost:3000", "-t", "ws://b:1,wss://c:2/x"},
			want: options{
				From:         "https://localhost:8443",
				To:           []string{"localhost:3000", "ws://b:1", "wss://c:2/x"},
				PingInterval: 25 * time.Second,
				PongTimeout:  20 * time.Second,
			},
		},
		{
			name: "pings off",
			args: []string{"--ping-interval", "off", "--pong-timeout", "3s", "--debug"},
			want: options{From: DefaultFrom, PingInterval: -1, PongTimeout: 3 * time.Second, Debug: true},
		},
		{
			name: "negative ping interval means off",
			args: []string{"--ping-interval=-5s"},
			want: options{From: DefaultFrom, PingInterval: -1, PongTimeout: 20 * time.Second},
		},
		{
			name: "caddy duration units",
			args: []string{"--ping-interval", "1d", "--pong-timeout", "1m30s"},
			want: options{From: DefaultFrom, PingInterval: 24 * time.Hour, PongTimeout: 90 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(t, tt.args)
			if err != nil {
				t.Fatalf(
					"options from %q: %v",
					tt.args, err)
			}
			if got.From != tt.want.From || strings.Join(got.To, " ") != strings.Join(tt.want.To, " ") ||
				got.PingInterval != tt.want.PingInterval || got.PongTimeout != tt.want.PongTimeout ||
				got.Debug != tt.want.Debug {
				t.Errorf(
					"options from %q = %+v, want %+v",
					tt.args, got, tt.want)
			}
		})
	}
}

func TestOptionsFromFlagsErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "zero ping interval",
			args: []string{"--ping-interval", "0s"},
			want: "use a positive duration or off",
		},
		{
			name: "ping interval not a duration",
			args: []string{"--ping-interval", "often"},
			want: "invalid --ping-interval",
		},
		{
			name: "zero pong timeout",
			args: []string{"--pong-timeout", "0"},
			want: "must be positive",
		},
		{
			name: "empty --to",
			args: []string{"--to", ""},
			want: "--to was given no upstream",
		},
		{
			name: "empty --to=",
			args: []string{"--to="},
			want: "--to was given no upstream",
		},
		{
			name: "pong timeout off",
			args: []string{"--pong-timeout", "off"},
			want: "invalid --pong-timeout",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseArgs(t, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf(
					"options from %q: error %v, want one containing %q",
					tt.args, err, tt.want)
			}
		})
	}
}

// parseArgs parses args with the command's flag definitions.
func parseArgs(t *testing.T, args []string) (options, error) {
	t.Helper()
	fs := pflag.NewFlagSet("websocket-relay", pflag.ContinueOnError)
	addFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf(
			"parsing %q: %v",
			args, err)
	}
	return optionsFromFlags(caddycmd.Flags{FlagSet: fs})
}
