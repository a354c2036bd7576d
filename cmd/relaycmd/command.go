// Package relaycmd adds the `caddy websocket-relay` command: a quick
// WebSocket relay in front of one or more backends, built like Caddy's
// `reverse-proxy` command. Without --to it relays to a built-in echo backend
// and serves a demo page, so that a newcomer sees the relay work in a browser.
package relaycmd

import (
	_ "embed"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// demoPage is the HTML page served at "/" in demo mode. Its script connects a
// WebSocket to the page's own address, sends a message every few seconds and
// shows the echoes.
//
//go:embed demo.html
var demoPage string

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "websocket-relay",
		Usage: "[--from <addr>] [--to <upstream>...] [--ping-interval <duration>|off] [--pong-timeout <duration>] [--debug]",
		Short: "A quick WebSocket relay that keeps idle clients alive (demo without --to)",
		Long: `
Relays WebSocket connections arriving at the --from address, frame by frame,
to the --to upstream(s). While a client is idle the relay pings it, so NAT
mappings and proxies with idle timeouts keep the connection open, and a
client that stopped answering is noticed and its backend connection closed.

--from is [http://|https://]host[:port], default ` + DefaultFrom + `. It is
plain HTTP unless the https:// scheme is given; then the certificate comes
from Caddy's internal CA (as with reverse-proxy --internal-certs) and no
HTTP->HTTPS redirect is set up. Paths are not allowed.

--to is an upstream: host:port, ws://host:port[/path],
wss://host:port[/path] or unix/<socket path>. Repeat it for several upstreams, used round-robin.
Requests that are not WebSocket upgrades get 426 Upgrade Required.

Without --to the command starts a WebSocket echo backend on a random
loopback port of the same process, relays to it, and serves a demo page at
"/": open the logged address in a browser and watch the echoes.

--ping-interval is how long a client may stay silent before it is pinged
(default 25s; "off" turns relay pings off). --pong-timeout is how long a
pinged client has to send any frame before it is declared dead (default 20s).
Durations take Caddy's forms: 500ms, 30s, 2m, 1h.
`,
		CobraFunc: func(cmd *cobra.Command) {
			addFlags(cmd.Flags())
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdWebsocketRelay)
		},
	})
}

// addFlags defines the command's flags on fs.
func addFlags(fs *pflag.FlagSet) {
	fs.StringP("from", "f", DefaultFrom, "Address on which to receive WebSocket connections")
	fs.StringSliceP("to", "t", nil, "Upstream WebSocket server(s); none starts the built-in echo backend and demo page")
	fs.String("ping-interval", relayconfig.DefaultPingInterval.String(), `Ping a client silent for this long ("off" for never)`)
	fs.String("pong-timeout", relayconfig.DefaultPongTimeout.String(), "Time a pinged client has to answer before it is declared dead")
	fs.BoolP("debug", "v", false, "Enable verbose debug logs")
}

// cmdWebsocketRelay runs the command: it builds the config, starts the echo
// backend when there is no upstream, runs Caddy and blocks, as
// `caddy reverse-proxy` does.
func cmdWebsocketRelay(fs caddycmd.Flags) (int, error) {
	caddy.TrapSignals()

	o, err := optionsFromFlags(fs)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	var echo *EchoServer
	if o.demo() {
		echo, err = StartEcho("127.0.0.1:0")
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		o.EchoAddr = echo.Addr()
	}
	cfg, s, err := buildConfig(o)
	if err == nil {
		err = caddy.Run(cfg)
	}
	if err != nil {
		if echo != nil {
			_ = echo.Close()
		}
		return caddy.ExitCodeFailedStartup, err
	}

	log := caddy.Log()
	if o.demo() {
		log.Info("websocket relay demo running: open the page in a browser",
			zap.String("page", s.URL()),
			zap.String("websocket", s.WebSocketURL()),
			zap.String("echo_backend", "ws://"+o.EchoAddr))
	} else {
		log.Info("websocket relay running: point WebSocket clients here",
			zap.String("websocket", s.WebSocketURL()),
			zap.Strings("upstreams", o.To))
	}
	select {}
}

// optionsFromFlags reads and checks the command's flags.
func optionsFromFlags(fs caddycmd.Flags) (options, error) {
	to, err := fs.GetStringSlice("to")
	if err != nil {
		return options{}, fmt.Errorf("invalid --to flag: %w", err)
	}
	if len(to) == 0 && fs.Changed("to") {
		// --to "$BACKEND" with the variable unset must not start the
		// echo backend in its place.
		return options{}, fmt.Errorf("--to was given no upstream; leave --to out for the built-in echo backend")
	}
	ping, err := parsePingInterval(fs.String("ping-interval"))
	if err != nil {
		return options{}, err
	}
	pong, err := parsePositiveDuration("pong-timeout", fs.String("pong-timeout"))
	if err != nil {
		return options{}, err
	}
	return options{
		From:         fs.String("from"),
		To:           to,
		PingInterval: ping,
		PongTimeout:  pong,
		Debug:        fs.Bool("debug"),
	}, nil
}

// parsePingInterval parses --ping-interval: a positive duration, or "off"
// (or a negative duration), which the handler reads as "no relay pings".
func parsePingInterval(s string) (time.Duration, error) {
	if s == "off" {
		return -1, nil
	}
	d, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid --ping-interval %q: %w", s, err)
	}
	if d == 0 {
		return 0, fmt.Errorf("invalid --ping-interval %q: use a positive duration or off", s)
	}
	if d < 0 {
		return -1, nil
	}
	return d, nil
}

// parsePositiveDuration parses the duration flag name, which must be > 0.
func parsePositiveDuration(name, s string) (time.Duration, error) {
	d, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid --%s %q: %w", name, s, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("invalid --%s %q: must be positive", name, s)
	}
	return d, nil
}
