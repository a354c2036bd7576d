// Package websocketrelay pulls in every part of the websocket_relay plugin,
// so that `xcaddy build --with github.com/websocket-relay/websocket_relay`
// gives a Caddy with the http.handlers.websocket_relay handler, the
// `websocket_relay` Caddyfile directive and the `caddy websocket-relay`
// command.
package websocketrelay

import (
	_ "github.com/websocket-relay/websocket_relay/caddyfile"
	_ "github.com/websocket-relay/websocket_relay/cmd/relaycmd"
	_ "github.com/websocket-relay/websocket_relay/module"
)
