package relaycmd

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/filestorage"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	wsrelay "github.com/websocket-relay/websocket_relay/module"
)

// cfgJSON is the part of a generated config the tests look at.
type cfgJSON struct {
	Admin struct {
		Disabled bool `json:"disabled"`
		Config   struct {
			Persist *bool `json:"persist"`
		} `json:"config"`
	} `json:"admin"`
	Logging *struct {
		Logs map[string]struct {
			Level string `json:"level"`
		} `json:"logs"`
	} `json:"logging"`
	Apps struct {
		HTTP struct {
			Servers map[string]struct {
				Listen    []string `json:"listen"`
				AutoHTTPS *struct {
					Disable      bool `json:"disable"`
					DisableRedir bool `json:"disable_redirects"`
				} `json:"automatic_https"`
				Routes []struct {
					Match  []map[string]json.RawMessage `json:"match"`
					Handle []json.RawMessage            `json:"handle"`
				} `json:"routes"`
			} `json:"servers"`
		} `json:"http"`
		TLS *struct {
			Automation struct {
				Policies []struct {
					Subjects []string          `json:"subjects"`
					Issuers  []json.RawMessage `json:"issuers"`
				} `json:"policies"`
			} `json:"automation"`
		} `json:"tls"`
	} `json:"apps"`
}

// handlerJSON is a route handler: its module name and, for static_response
// and websocket_relay, the fields the tests check.
type handlerJSON struct {
	Module     string               `json:"handler"`
	StatusCode caddyhttp.WeakString `json:"status_code"`
	Headers    map[string][]string  `json:"headers"`
	Body       string               `json:"body"`
	wsrelay.Handler
}

func decodeConfig(t *testing.T, cfg *caddy.Config) cfgJSON {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf(
			"marshalling config: %v",
			err)
	}
	var c cfgJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf(
			"decoding config %s: %v",
			raw, err)
	}
	return c
}

func decodeHandler(t *testing.T, raw json.RawMessage) handlerJSON {
	t.Helper()
	var h handlerJSON
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf(
			"decoding handler: %v",
			err)
	}
	return h
}

func TestBuildConfig(t *testing.T) {
	tests := []struct {
		name        string
		opts        options
		listen      string
		url         string
		wsURL       string
		upstreams   []string
		ping, pong  time.Duration
		demo        bool
		https       bool
		hostMatcher string
		debug       bool
	}{
		{
			name:      "default demo",
			opts:      options{EchoAddr: "127.0.0.1:4000"},
			listen:    "localhost:8080",
			url:       "http://localhost:8080/",
			wsURL:     "ws://localhost:8080/",
			upstreams: []string{"ws://127.0.0.1:4000"},
			demo:      true,
		},
		{
			name: "upstreams with pings off",
			opts: options{
				From:         "127.0.0.1:9000",
				To:           []string{"localhost:3000", "ws://10.0.0.2:3001/ws", "unix//run/app.sock"},
				PingInterval: -1,
				PongTimeout:  5 * time.Second,
			},
			listen:    "127.0.0.1:9000",
			url:       "http://127.0.0.1:9000/",
			wsURL:     "ws://127.0.0.1:9000/",
			upstreams: []string{"localhost:3000", "ws://10.0.0.2:3001/ws", "unix//run/app.sock"},
			ping:      -1,
			pong:      5 * time.Second,
		},
		{
			name:      "explicit ping interval and debug",
			opts:      options{From: "http://localhost:8081", To: []string{"wss://backend.example:443"}, PingInterval: 40 * time.Second, Debug: true},
			listen:    "localhost:8081",
			url:       "http://localhost:8081/",
			wsURL:     "ws://localhost:8081/",
			upstreams: []string{"wss://backend.example:443"},
			ping:      40 * time.Second,
			debug:     true,
		},
		{
			name:        "https with internal certificate",
			opts:        options{From: "https://localhost:8443", EchoAddr: "127.0.0.1:4000"},
			listen:      "localhost:8443",
			url:         "https://localhost:8443/",
			wsURL:       "wss://localhost:8443/",
			upstreams:   []string{"ws://127.0.0.1:4000"},
			demo:        true,
			https:       true,
			hostMatcher: "localhost",
		},
		{
			name:        "wss scheme means https, default port 443",
			opts:        options{From: "wss://relay.test", To: []string{"localhost:3000"}},
			listen:      ":443",
			url:         "https://relay.test:443/",
			wsURL:       "wss://relay.test:443/",
			upstreams:   []string{"localhost:3000"},
			https:       true,
			hostMatcher: "relay.test",
		},
		{
			name:        "host name listens everywhere and matches the host",
			opts:        options{From: "relay.test:9000", To: []string{"localhost:3000"}},
			listen:      ":9000",
			url:         "http://relay.test:9000/",
			wsURL:       "ws://relay.test:9000/",
			upstreams:   []string{"localhost:3000"},
			hostMatcher: "relay.test",
		},
		{
			name:      "port only",
			opts:      options{From: ":8080", EchoAddr: "127.0.0.1:4000"},
			listen:    ":8080",
			url:       "http://localhost:8080/",
			wsURL:     "ws://localhost:8080/",
			upstreams: []string{"ws://127.0.0.1:4000"},
			demo:      true,
		},
		{
			name:      "IPv6 literal without port",
			opts:      options{From: "[::1]", To: []string{"localhost:3000"}},
			listen:    "[::1]:80",
			url:       "http://[::1]:80/",
			wsURL:     "ws://[::1]:80/",
			upstreams: []string{"localhost:3000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, s, err := buildConfig(tt.opts)
			if err != nil {
				t.Fatalf(
					"buildConfig(%+v): %v",
					tt.opts, err)
			}
			if s.URL() != tt.url || s.WebSocketURL() != tt.wsURL {
				t.Errorf(
					"URLs = %s, %s; want %s, %s",
					s.URL(), s.WebSocketURL(), tt.url, tt.wsURL)
			}
			c := decodeConfig(t, cfg)
			checkAdminAndLogs(t, c, tt.debug)
			srv, ok := c.Apps.HTTP.Servers[serverName]
			if !ok || len(c.Apps.HTTP.Servers) != 1 {
				t.Fatalf(
					"servers = %v, want just %q",
					c.Apps.HTTP.Servers, serverName)
			}
			if len(srv.Listen) != 1 || srv.Listen[0] != tt.listen {
				t.Errorf(
					"listen = %v, want [%s]",
					srv.Listen, tt.listen)
			}
			if srv.AutoHTTPS == nil || srv.AutoHTTPS.Disable == tt.https || srv.AutoHTTPS.DisableRedir != tt.https {
				t.Errorf(
					"automatic_https = %+v, want disabled=%v disable_redirects=%v",
					srv.AutoHTTPS, !tt.https, tt.https)
			}
			checkTLS(t, c, tt.https, tt.hostMatcher)

			wantRoutes := 2
			if tt.demo {
				wantRoutes = 3
			}
			if len(srv.Routes) != wantRoutes {
				t.Fatalf(
					"%d routes, want %d",
					len(srv.Routes), wantRoutes)
			}
			for i, r := range srv.Routes {
				if len(r.Handle) != 1 {
					t.Fatalf(
						"route %d has %d handlers, want 1",
						i, len(r.Handle))
				}
				checkHostMatcher(t, i, r.Match, tt.hostMatcher)
			}

			relay := decodeHandler(t, srv.Routes[0].Handle[0])
			if relay.Module != "websocket_relay" {
				t.Fatalf(
					"first handler is %q, want websocket_relay",
					relay.Module)
			}
			if strings.Join(relay.Upstreams, " ") != strings.Join(tt.upstreams, " ") {
				t.Errorf(
					"upstreams = %v, want %v",
					relay.Upstreams, tt.upstreams)
			}
			if time.Duration(relay.PingInterval) != tt.ping || time.Duration(relay.PongTimeout) != tt.pong {
				t.Errorf(
					"ping_interval, pong_timeout = %v, %v; want %v, %v",
					time.Duration(relay.PingInterval), time.Duration(relay.PongTimeout), tt.ping, tt.pong)
			}
			for _, set := range srv.Routes[0].Match {
				for k := range set {
					if k != "host" {
						t.Errorf(
							"relay route has a %s matcher, want none but the host",
							k)
					}
				}
			}
			if tt.demo {
				checkDemoRoutes(t, decodeHandler(t, srv.Routes[1].Handle[0]), decodeHandler(t, srv.Routes[2].Handle[0]), srv.Routes[1].Match)
			} else {
				fallback := decodeHandler(t, srv.Routes[1].Handle[0])
				checkStatic(t, "fallback", fallback, "426", "text/plain; charset=utf-8")
				if got := fallback.Headers["Upgrade"]; len(got) != 1 || got[0] != "websocket" {
					t.Errorf(
						"426 response Upgrade header = %v, want [websocket]",
						got)
				}
			}

			validateConfig(t, cfg)
		})
	}
}

func checkAdminAndLogs(t *testing.T, c cfgJSON, debug bool) {
	t.Helper()
	if !c.Admin.Disabled || c.Admin.Config.Persist == nil || *c.Admin.Config.Persist {
		t.Errorf(
			"admin = %+v, want disabled and not persisted",
			c.Admin)
	}
	if !debug {
		if c.Logging != nil {
			t.Errorf(
				"logging = %+v, want none without --debug",
				c.Logging)
		}
		return
	}
	if c.Logging == nil || c.Logging.Logs["default"].Level != "DEBUG" {
		t.Errorf(
			"logging = %+v, want default log at DEBUG",
			c.Logging)
	}
}

func checkTLS(t *testing.T, c cfgJSON, https bool, host string) {
	t.Helper()
	if !https {
		if c.Apps.TLS != nil {
			t.Errorf(
				"tls app present for plain HTTP: %+v",
				c.Apps.TLS)
		}
		return
	}
	if c.Apps.TLS == nil || len(c.Apps.TLS.Automation.Policies) != 1 {
		t.Fatalf(
			"tls app = %+v, want one automation policy",
			c.Apps.TLS)
	}
	p := c.Apps.TLS.Automation.Policies[0]
	if len(p.Subjects) != 1 || p.Subjects[0] != host {
		t.Errorf(
			"tls subjects = %v, want [%s]",
			p.Subjects, host)
	}
	if len(p.Issuers) != 1 || !strings.Contains(string(p.Issuers[0]), `"internal"`) {
		t.Errorf(
			"tls issuers = %s, want the internal issuer",
			p.Issuers)
	}
}

func checkHostMatcher(t *testing.T, route int, match []map[string]json.RawMessage, host string) {
	t.Helper()
	if host == "" {
		for _, set := range match {
			if _, ok := set["host"]; ok {
				t.Errorf(
					"route %d has a host matcher %s, want none",
					route, set["host"])
			}
		}
		return
	}
	if len(match) != 1 || string(match[0]["host"]) != `["`+host+`"]` {
		t.Errorf(
			"route %d matchers = %v, want host %s",
			route, match, host)
	}
}

func checkDemoRoutes(t *testing.T, page, notFound handlerJSON, pageMatch []map[string]json.RawMessage) {
	t.Helper()
	checkStatic(t, "demo page", page, "200", "text/html; charset=utf-8")
	if page.Body != demoPage {
		t.Errorf("demo page body is not the embedded demo.html")
	}
	if len(pageMatch) != 1 || string(pageMatch[0]["path"]) != `["/"]` {
		t.Errorf(
			"demo page matchers = %v, want path /",
			pageMatch)
	}
	checkStatic(t, "not found", notFound, "404", "text/plain; charset=utf-8")
}

func checkStatic(t *testing.T, what string, h handlerJSON, status, contentType string) {
	t.Helper()
	if h.Module != "static_response" || h.StatusCode.String() != status {
		t.Errorf(
			"%s handler = %s %s, want static_response %s",
			what, h.Module, h.StatusCode, status)
	}
	if got := h.Headers["Content-Type"]; len(got) != 1 || got[0] != contentType {
		t.Errorf(
			"%s Content-Type = %v, want %s",
			what, got, contentType)
	}
}

// validateConfig provisions cfg with Caddy's real modules, without starting
// it, with storage in a temporary directory.
func validateConfig(t *testing.T, cfg *caddy.Config) {
	t.Helper()
	withStorage := *cfg
	withStorage.StorageRaw = caddyconfig.JSONModuleObject(
		filestorage.FileStorage{Root: t.TempDir()}, "module", "file_system", nil)
	withStorage.Logging = &caddy.Logging{Logs: map[string]*caddy.CustomLog{
		"default": {BaseLog: caddy.BaseLog{WriterRaw: []byte(`{"output":"discard"}`)}},
	}}
	if err := caddy.Validate(&withStorage); err != nil {
		t.Errorf(
			"caddy.Validate: %v",
			err)
	}
}

func TestBuildConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		opts options
		want string
	}{
		{
			name: "path in from",
			opts: options{From: "localhost:8080/chat", To: []string{"localhost:3000"}},
			want: "paths are not allowed",
		},
		{
			name: "unknown scheme",
			opts: options{From: "ftp://localhost:8080", To: []string{"localhost:3000"}},
			want: "scheme must be http or https",
		},
		{
			name: "https without host",
			opts: options{From: "https://:8443", To: []string{"localhost:3000"}},
			want: "https needs a host name",
		},
		{
			name: "bad port",
			opts: options{From: "localhost:99999", To: []string{"localhost:3000"}},
			want: "invalid --from address",
		},
		{
			name: "upstream without port",
			opts: options{To: []string{"localhost"}},
			want: "want host:port",
		},
		{
			name: "upstream with http scheme",
			opts: options{To: []string{"http://localhost:3000"}},
			want: "scheme must be ws or wss",
		},
		{
			name: "negative pong timeout",
			opts: options{To: []string{"localhost:3000"}, PongTimeout: -time.Second},
			want: "--pong-timeout must be positive",
		},
		{
			name: "demo without echo backend",
			opts: options{},
			want: "no echo backend",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := buildConfig(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf(
					"buildConfig(%+v) error = %v, want one containing %q",
					tt.opts, err, tt.want)
			}
		})
	}
}
