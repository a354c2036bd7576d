package relayconfig

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Defaults for every option of [Options]. Each field's doc comment repeats
// its default, and so does the README.
const (
	DefaultPingInterval     = 25 * time.Second
	DefaultPongTimeout      = 20 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultDialTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultCloseTimeout     = 5 * time.Second
	DefaultDrainPeriod      = 10 * time.Second
	DefaultStallTimeout     = 30 * time.Second
	DefaultTryInterval      = 250 * time.Millisecond
)

// Options are the settings of one websocket_relay handler, as its JSON
// config holds them: the module's Handler embeds them, and the
// Caddyfile's directive fills them.
type Options struct {
	// Upstreams are the backends, taken in LBPolicy's order: "host:port",
	// "ws://host:port[/path]" or "wss://host:port[/path]". A path in an
	// upstream is prefixed to the request's path. Required.
	Upstreams []string `json:"upstreams,omitempty"`

	// PingInterval is how long a client may stay silent before the relay
	// pings it. Default: 25s. A negative value turns relay pings off.
	// Pings go out on a grid of 1/16 of the interval (at most 250 ms)
	// shared by all connections, so up to one step late.
	PingInterval caddy.Duration `json:"ping_interval,omitempty"`

	// PongTimeout is how long after a relay ping is written the client has
	// to send any frame before it is declared dead. Default: 20s.
	PongTimeout caddy.Duration `json:"pong_timeout,omitempty"`

	// WriteTimeout bounds every write to the client; a write that cannot
	// finish in time marks the client dead. Default: 10s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	// DialTimeout bounds the TCP (and TLS) connection to a backend.
	// Default: 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// HandshakeTimeout bounds the wait for the backend's answer to the
	// upgrade request. Default: 10s.
	HandshakeTimeout caddy.Duration `json:"handshake_timeout,omitempty"`

	// CloseTimeout is how long the relay waits for a peer to answer a
	// close frame before it closes the TCP connection. Default: 5s.
	CloseTimeout caddy.Duration `json:"close_timeout,omitempty"`

	// StallTimeout bounds each wait for the rest of a frame once its first
	// byte arrived, from either side: a peer that announces a frame and
	// then stalls is dropped (a stalled client's backend gets 1001).
	// Idleness between frames is not a stall. Default: 30s.
	StallTimeout caddy.Duration `json:"stall_timeout,omitempty"`

	// DrainPeriod spreads the 1012 (service restart) closes of a config
	// reload evenly over this long, so clients do not all reconnect at
	// once. Default: 10s. A negative value closes them all at once.
	DrainPeriod caddy.Duration `json:"drain_period,omitempty"`

	// TLSInsecureSkipVerify turns off verification of a wss:// backend's
	// certificate. For test backends only. Default: false.
	TLSInsecureSkipVerify bool `json:"tls_insecure_skip_verify,omitempty"`
	// TLSTrustedCACerts are PEM files of the certificate authorities a
	// wss:// backend's certificate is verified against, instead of the
	// system's (a private CA). Default: the system's roots.
	TLSTrustedCACerts []string `json:"tls_trusted_ca_certs,omitempty"`
	// TLSServerName is the name sent to a wss:// backend in SNI and that
	// its certificate must be valid for. Default: the upstream's host.
	TLSServerName string `json:"tls_server_name,omitempty"`

	// LBPolicy chooses the upstream of each upgrade, as reverse_proxy's
	// lb_policy does. Default: round_robin.
	LBPolicy *LBPolicy `json:"lb_policy,omitempty"`

	// HeaderUp changes the upgrade request's headers on its way to the
	// backend, after hop-by-hop headers were removed and X-Forwarded-*
	// added. Values may hold placeholders. Default: none.
	HeaderUp *HeaderOps `json:"header_up,omitempty"`
	// TryDuration is how long an upgrade may be tried again, every
	// TryInterval, in the policy's order, when every upstream failed
	// (dial or upgrade), counted from its arrival: a backend restarting
	// in a deploy is waited for rather than answered 502 (as
	// reverse_proxy's lb_try_duration). Default: 0, one try of each
	// upstream.
	TryDuration caddy.Duration `json:"try_duration,omitempty"`
	// TryInterval is the wait before each try after the first. Default:
	// 250ms.
	TryInterval caddy.Duration `json:"try_interval,omitempty"`
	// Retries bounds the tries after the first, each a try of every
	// upstream in the policy's order (with TryDuration, whichever ends
	// first). Default: 0, no bound but TryDuration, and no retry
	// without it.
	Retries int `json:"retries,omitempty"`

	// PassiveHealthChecks judge the upstreams by their upgrades. Default:
	// an upstream whose dial or upgrade failed goes after the others
	// for 5s.
	PassiveHealthChecks *PassiveHealthChecks `json:"passive_health_checks,omitempty"`

	// HealthChecks are active health checks of the upstreams. Default:
	// none (an upstream whose dial or upgrade failed goes after the
	// others for 5s, with or without them).
	HealthChecks *HealthChecks `json:"health_checks,omitempty"`

	// DisableEventLoops keeps every relay on the goroutine engine: no
	// relay of plain (ws) legs moves onto the event loops when it idles.
	// Default: false (the loops are used on Linux).
	DisableEventLoops bool `json:"disable_event_loops,omitempty"`
}

// SetDefaults fills every unset option with its default.
func (o *Options) SetDefaults() {
	def := func(d *caddy.Duration, v time.Duration) {
		if *d == 0 {
			*d = caddy.Duration(v)
		}
	}
	def(&o.PingInterval, DefaultPingInterval)
	def(&o.PongTimeout, DefaultPongTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.DialTimeout, DefaultDialTimeout)
	def(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&o.CloseTimeout, DefaultCloseTimeout)
	def(&o.DrainPeriod, DefaultDrainPeriod)
	def(&o.StallTimeout, DefaultStallTimeout)
	if o.TryDuration > 0 || o.Retries > 0 {
		def(&o.TryInterval, DefaultTryInterval)
	}
	o.HealthChecks.SetDefaults()
	o.PassiveHealthChecks.SetDefaults()
}

// Validate rejects a configuration that cannot work.
func (o *Options) Validate() error {
	if len(o.Upstreams) == 0 {
		return errNoUpstream
	}
	for _, u := range o.Upstreams {
		if _, err := ParseUpstream(u); err != nil {
			return fmt.Errorf("websocket_relay: %w", err)
		}
	}
	if err := o.LBPolicy.Validate(); err != nil {
		return fmt.Errorf("websocket_relay: lb_policy: %w", err)
	}
	if err := o.LBPolicy.CheckUpstreams(len(o.Upstreams)); err != nil {
		return fmt.Errorf("websocket_relay: lb_policy: %w", err)
	}
	if o.TryDuration < 0 || o.TryInterval < 0 || o.Retries < 0 {
		return fmt.Errorf("websocket_relay: try_duration, try_interval and retries must not be negative")
	}
	if err := o.HealthChecks.Validate(); err != nil {
		return fmt.Errorf("websocket_relay: health checks: %w", err)
	}
	if err := o.HealthChecks.CheckUpstreams(o.Upstreams); err != nil {
		return fmt.Errorf("websocket_relay: health checks: %w", err)
	}
	if err := o.PassiveHealthChecks.Validate(); err != nil {
		return fmt.Errorf("websocket_relay: passive health checks: %w", err)
	}
	if err := o.HeaderUp.Validate(); err != nil {
		return fmt.Errorf("websocket_relay: header_up: %w", err)
	}
	if (len(o.TLSTrustedCACerts) > 0 || o.TLSServerName != "") && !o.HasTLSUpstream() {
		return fmt.Errorf("websocket_relay: tls_trusted_ca_certs and tls_server_name apply to wss:// upstreams, and none is configured")
	}
	for _, f := range o.TLSTrustedCACerts {
		if f == "" {
			return fmt.Errorf("websocket_relay: tls_trusted_ca_certs: empty file name")
		}
	}
	if o.PingInterval >= 0 && o.PongTimeout <= 0 {
		return fmt.Errorf("websocket_relay: pong_timeout must be positive while pings are on")
	}
	for name, d := range map[string]caddy.Duration{
		"pong_timeout":      o.PongTimeout,
		"write_timeout":     o.WriteTimeout,
		"dial_timeout":      o.DialTimeout,
		"handshake_timeout": o.HandshakeTimeout,
		"close_timeout":     o.CloseTimeout,
		"stall_timeout":     o.StallTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("websocket_relay: %s must not be negative, got %s", name, time.Duration(d))
		}
	}
	return nil
}

// errNoUpstream is returned by Validate when no upstream is configured.
var errNoUpstream = errors.New("websocket_relay: at least one upstream is required")

// HasTLSUpstream reports whether one of the upstreams is wss://.
func (o *Options) HasTLSUpstream() bool {
	for _, s := range o.Upstreams {
		if u, err := ParseUpstream(s); err == nil && u.TLS {
			return true
		}
	}
	return false
}
