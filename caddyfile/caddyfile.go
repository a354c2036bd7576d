package relaycaddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/websocket-relay/websocket_relay/caddyfile/directive"
	wsrelay "github.com/websocket-relay/websocket_relay/module"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective(directive.Name, parse)
	// Before reverse_proxy is after respond, abort, error and the auth
	// directives, so access rules in a site still apply to upgrades.
	httpcaddyfile.RegisterDirectiveOrder(directive.Name, httpcaddyfile.Before, "reverse_proxy")
}

// parse is the setup func of the websocket_relay directive: the module's
// handler, with the options the directive's tokens give.
func parse(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(wsrelay.Handler)
	if err := directive.Unmarshal(h.Dispenser, &handler.Options); err != nil {
		return nil, err
	}
	return handler, nil
}

// Interface guards
var _ httpcaddyfile.UnmarshalHandlerFunc = parse
