// Package relaycaddyfile adds the websocket_relay directive to the
// Caddyfile: it registers the directive, whose tokens package directive
// turns into the http.handlers.websocket_relay module's options, and
// orders it just before reverse_proxy, so a site needs no `order` line to
// use both.
//
// The parser writes only what the user gave: defaults are the module's
// business (Provision sets them), so adapted JSON stays short and a
// default changed in the module reaches every Caddyfile.
package relaycaddyfile
