// Command caddy is Caddy with its standard modules and the websocket_relay
// plugin built in: the handler, the `websocket_relay` Caddyfile directive and
// the `caddy websocket-relay` command.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/websocket-relay/websocket_relay"
)

func main() {
	caddycmd.Main()
}
