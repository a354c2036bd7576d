// Package relaycaddyfile adds the websocket_relay directive to the
// Caddyfile. It turns the directive's tokens into the JSON config of the
// http.handlers.websocket_relay module and orders the directive just
// before reverse_proxy, so a site needs no `order` line to use both.
//
// The parser writes only what the user gave: defaults are the module's
// business (Provision sets them), so adapted JSON stays short and a
// default changed in the module reaches every Caddyfile.
package relaycaddyfile
