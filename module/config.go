package wsrelay

import (
	"crypto/tls"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"

	"go.uber.org/zap"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// Handler relays WebSocket connections frame by frame to a backend and
// keeps idle clients alive with pings. Requests that are not WebSocket
// upgrades go to the next handler untouched. Its JSON config is that of
// the embedded [relayconfig.Options], whose fields it has as its own.
type Handler struct {
	relayconfig.Options

	logger *zap.Logger
	pool   *upstreamPool
	live   *registry
	// tlsBase is the TLS config of wss:// dials, without the server name
	// when TLSServerName is unset (each dial sets its upstream's host).
	tlsBase *tls.Config
	// headerUp is HeaderUp as Caddy's header operations.
	headerUp *headers.HeaderOps
	// named: Provision counted pool's upstreams as named by this
	// configuration (for their upstream_connections series), and
	// Cleanup has not taken that back yet.
	named bool
	// health runs the active health checks (nil without them).
	health *healthChecker
}
