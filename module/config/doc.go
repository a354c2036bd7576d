// Package relayconfig holds the options of the websocket_relay handler:
// their JSON form, defaults and checks, and the parsing of an upstream's
// address. It imports only Caddy's core package (for caddy.Duration), so
// the Caddyfile directive's parser and its fuzz target build without
// Caddy's HTTP app.
package relayconfig
