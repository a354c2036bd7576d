package relaycmd

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"go.uber.org/zap"

	wsrelay "github.com/websocket-relay/websocket_relay/module"
	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// DefaultFrom is the address the command listens on when --from is not given.
const DefaultFrom = "localhost:8080"

// serverName is the name of the one HTTP server in the generated config.
const serverName = "websocket_relay"

// options are the command-line choices of `caddy websocket-relay`.
type options struct {
	// From is where clients connect: [scheme://]host[:port].
	From string
	// To are the backends; empty means the built-in echo backend at EchoAddr.
	To []string
	// PingInterval is passed to the handler: 0 keeps its default, a negative
	// value turns relay pings off.
	PingInterval time.Duration
	// PongTimeout is passed to the handler: 0 keeps its default.
	PongTimeout time.Duration
	// Debug turns on debug logs.
	Debug bool
	// EchoAddr is the loopback host:port of the built-in echo backend. It is
	// used, together with the demo page, only when To is empty.
	EchoAddr string
}

// demo reports whether the command relays to its built-in echo backend.
func (o options) demo() bool { return len(o.To) == 0 }

// site is where the generated config serves, as a user would type it.
type site struct {
	Scheme string // "http" or "https"
	Host   string // "" when listening on every interface with no host name
	Port   string
	Listen string // the server's listen address
}

// URL returns the page address to open in a browser.
func (s site) URL() string { return s.Scheme + "://" + s.hostPort() + "/" }

// WebSocketURL returns the address WebSocket clients connect to.
func (s site) WebSocketURL() string {
	scheme := "ws"
	if s.Scheme == "https" {
		scheme = "wss"
	}
	return scheme + "://" + s.hostPort() + "/"
}

func (s site) hostPort() string {
	host := s.Host
	if host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, s.Port)
}

// parseFrom turns the --from address into a site. Unlike `caddy
// reverse-proxy`, a host name alone does not mean HTTPS: only an https:// (or
// wss://) scheme does, and then the certificate comes from Caddy's internal
// CA.
func parseFrom(from string) (site, error) {
	if from == "" {
		from = DefaultFrom
	}
	addr, err := httpcaddyfile.ParseAddress(from)
	if err != nil {
		return site{}, fmt.Errorf("invalid --from address %q: %w", from, err)
	}
	if addr.Path != "" && addr.Path != "/" {
		return site{}, fmt.Errorf("invalid --from address %q: paths are not allowed", from)
	}
	s := site{Host: addr.Host, Port: addr.Port}
	switch addr.Scheme {
	case "", "http", "ws":
		s.Scheme = "http"
	case "https", "wss":
		s.Scheme = "https"
	default:
		return site{}, fmt.Errorf("invalid --from address %q: scheme must be http or https", from)
	}
	if s.Scheme == "https" && s.Host == "" {
		return site{}, fmt.Errorf("invalid --from address %q: https needs a host name for its certificate", from)
	}
	if s.Port == "" {
		s.Port = strconv.Itoa(caddyhttp.DefaultHTTPPort)
		if s.Scheme == "https" {
			s.Port = strconv.Itoa(caddyhttp.DefaultHTTPSPort)
		}
	}
	s.Listen = ":" + s.Port
	if isLocalHost(s.Host) {
		// A loopback name or an IP literal: bind to it alone, so the demo
		// is not reachable from the network unless asked for.
		s.Listen = net.JoinHostPort(s.Host, s.Port)
	}
	return s, nil
}

// isLocalHost reports whether host is "localhost" or an IP literal, that is,
// an address the server can bind to by itself.
func isLocalHost(host string) bool {
	return host == "localhost" || net.ParseIP(host) != nil
}

// hostMatched reports whether routes must match the Host header: always for
// HTTPS (automatic HTTPS learns the certificate's name from the matcher) and
// for a host name the server does not bind to, as `caddy reverse-proxy` does.
func (s site) hostMatched() bool {
	return s.Host != "" && (s.Scheme == "https" || !isLocalHost(s.Host))
}

// buildHandler returns the websocket_relay handler for o, checked with the
// handler's own Validate so that a bad flag fails before anything starts.
func buildHandler(o options) (wsrelay.Handler, error) {
	upstreams := o.To
	if o.demo() {
		if o.EchoAddr == "" {
			return wsrelay.Handler{}, fmt.Errorf("no --to upstream and no echo backend")
		}
		upstreams = []string{"ws://" + o.EchoAddr}
	}
	if o.PongTimeout < 0 {
		return wsrelay.Handler{}, fmt.Errorf("--pong-timeout must be positive, got %s", o.PongTimeout)
	}
	h := wsrelay.Handler{Options: relayconfig.Options{
		Upstreams:    upstreams,
		PingInterval: caddy.Duration(o.PingInterval),
		PongTimeout:  caddy.Duration(o.PongTimeout),
	}}
	// Validate sees the options as Caddy will, after Provision has filled
	// the defaults of what is left zero here.
	check := h.Options
	check.SetDefaults()
	if err := check.Validate(); err != nil {
		return wsrelay.Handler{}, err
	}
	return h, nil
}

// buildConfig returns the Caddy config that serves o, and where it serves.
// Routes, in order: the relay (every request; non-upgrades pass through),
// then in demo mode the demo page at "/" and 404 elsewhere, otherwise 426
// for anything that is not a WebSocket upgrade.
func buildConfig(o options) (*caddy.Config, site, error) {
	s, err := parseFrom(o.From)
	if err != nil {
		return nil, site{}, err
	}
	h, err := buildHandler(o)
	if err != nil {
		return nil, site{}, err
	}

	routes := caddyhttp.RouteList{
		{HandlersRaw: []json.RawMessage{caddyconfig.JSONModuleObject(h, "handler", "websocket_relay", nil)}},
	}
	if o.demo() {
		routes = append(routes,
			caddyhttp.Route{
				MatcherSetsRaw: []caddy.ModuleMap{{"path": caddyconfig.JSON(caddyhttp.MatchPath{"/"}, nil)}},
				HandlersRaw: []json.RawMessage{staticResponse(http.StatusOK,
					"text/html; charset=utf-8", demoPage)},
			},
			caddyhttp.Route{HandlersRaw: []json.RawMessage{staticResponse(http.StatusNotFound,
				"text/plain; charset=utf-8", "not found\n")}},
		)
	} else {
		routes = append(routes, caddyhttp.Route{HandlersRaw: []json.RawMessage{staticResponse(
			http.StatusUpgradeRequired, "text/plain; charset=utf-8",
			"this address relays WebSocket connections only\n",
			"Upgrade", "websocket", "Connection", "Upgrade")}})
	}
	if s.hostMatched() {
		hostMatch := caddy.ModuleMap{"host": caddyconfig.JSON(caddyhttp.MatchHost{s.Host}, nil)}
		for i := range routes {
			if len(routes[i].MatcherSetsRaw) == 0 {
				routes[i].MatcherSetsRaw = []caddy.ModuleMap{{}}
			}
			for k, v := range hostMatch {
				routes[i].MatcherSetsRaw[0][k] = v
			}
		}
	}

	server := &caddyhttp.Server{Listen: []string{s.Listen}, Routes: routes}
	if s.Scheme == "http" {
		server.AutoHTTPS = &caddyhttp.AutoHTTPSConfig{Disabled: true}
	} else {
		// The redirect server would need port 80; a quick command does
		// without it.
		server.AutoHTTPS = &caddyhttp.AutoHTTPSConfig{DisableRedir: true}
	}
	apps := caddy.ModuleMap{
		"http": caddyconfig.JSON(caddyhttp.App{Servers: map[string]*caddyhttp.Server{serverName: server}}, nil),
	}
	if s.Scheme == "https" {
		apps["tls"] = caddyconfig.JSON(caddytls.TLS{Automation: &caddytls.AutomationConfig{
			Policies: []*caddytls.AutomationPolicy{{
				SubjectsRaw: []string{s.Host},
				IssuersRaw:  []json.RawMessage{json.RawMessage(`{"module":"internal"}`)},
			}},
		}}, nil)
	}

	persist := false
	cfg := &caddy.Config{
		// Like `caddy reverse-proxy`: no admin endpoint (so the command runs
		// beside another Caddy) and no autosave of this throwaway config.
		Admin:   &caddy.AdminConfig{Disabled: true, Config: &caddy.ConfigSettings{Persist: &persist}},
		AppsRaw: apps,
	}
	if o.Debug {
		cfg.Logging = &caddy.Logging{Logs: map[string]*caddy.CustomLog{
			"default": {BaseLog: caddy.BaseLog{Level: zap.DebugLevel.CapitalString()}},
		}}
	}
	return cfg, s, nil
}

// staticResponse returns a static_response handler with the given status,
// Content-Type and body, and extra headers given as name, value pairs.
func staticResponse(status int, contentType, body string, headerPairs ...string) json.RawMessage {
	hdr := http.Header{"Content-Type": {contentType}}
	for i := 0; i+1 < len(headerPairs); i += 2 {
		hdr.Set(headerPairs[i], headerPairs[i+1])
	}
	return caddyconfig.JSONModuleObject(caddyhttp.StaticResponse{
		StatusCode: caddyhttp.WeakString(strconv.Itoa(status)),
		Headers:    hdr,
		Body:       body,
	}, "handler", "static_response", nil)
}
