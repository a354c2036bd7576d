// Package wsrelay is the Caddy glue of websocket_relay: the handler module
// http.handlers.websocket_relay, its provisioning, the backend dial and
// handshake, the registry of live relays, metrics and logs. Its options
// are package relayconfig's; the HTTP checks of the upgrade and the
// exchange with the backend are package upgrade's. The frame relay itself
// lives in the engine package; none of the three knows Caddy's HTTP app.
package wsrelay

import (
	"fmt"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
	"github.com/websocket-relay/websocket_relay/module/engine"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// now is the clock; tests may replace it.
var now = time.Now

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.websocket_relay",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults, parses the upstreams and registers metrics.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.release() // a handler provisioned again (Caddy makes new ones)
	h.SetDefaults()
	h.logger = ctx.Logger()
	list := make([]relayconfig.Upstream, 0, len(h.Upstreams))
	for _, s := range h.Upstreams {
		u, err := relayconfig.ParseUpstream(s)
		if err != nil {
			return fmt.Errorf("websocket_relay: %w", err)
		}
		list = append(list, u)
	}
	if len(list) > 0 {
		h.pool = newUpstreamPool(list, h.LBPolicy)
		h.pool.setPassive(h.PassiveHealthChecks)
	}
	tc, err := h.backendTLS()
	if err != nil {
		return err
	}
	h.tlsBase = tc
	if h.headerUp, err = headerOps(ctx, h.HeaderUp); err != nil {
		return err
	}
	h.live = newRegistry(time.Duration(h.CloseTimeout) + time.Duration(h.WriteTimeout) + time.Second)
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("websocket_relay: registering metrics: %w", err)
	}
	if h.pool != nil {
		h.pool.name(1) // last: Cleanup, which runs after a failed Provision too, takes it back
		h.named = true
	}
	h.startHealthChecks()
	return nil
}

// release stops the health checks and takes back the naming of the
// upstreams (for their upstream_connections series), if Provision did
// either.
func (h *Handler) release() {
	h.stopHealth()
	if h.named {
		h.pool.name(-1)
		h.named = false
	}
}

// stopHealth stops the health checks, if any run, and waits for them.
func (h *Handler) stopHealth() {
	if h.health != nil {
		h.health.stop()
		h.health = nil
	}
}

// exiting reports whether the process is exiting (a variable for tests).
var exiting = caddy.Exiting

// Cleanup closes every live relay when this configuration goes away.
// When Caddy exits, the first Cleanup gives every relay of the process
// (every handler's, and those of earlier configurations still closing)
// 1001 (going away) at once, as it does to upgrades under way once they
// become relays, and waits until they ended, or for the CloseTimeout +
// WriteTimeout + 1 s of the handler each relay belongs to (a close frame
// may wait behind a frame to a slow client, then for the answer), counted
// once per registry from the first shutdown that found a relay in it, so
// the process does not exit before the close frames left. When a new
// configuration replaces this one, the relays get 1012 (service restart)
// spread over DrainPeriod and Cleanup returns at once. Each close goes
// between whole frames.
func (h *Handler) Cleanup() error {
	// Its upstreams' series go once no configuration names them and
	// their relays (these, draining, among them) ended.
	defer h.release()
	h.stopHealth() // first: no check goes on while relays close
	if h.live == nil {
		return nil
	}
	if exiting() {
		// All at once, then one wait: the close frames of every
		// registry's relays go out together, and every registry is
		// waited for until its one deadline (registry.deadline),
		// whichever Cleanup runs.
		// Once more while a relay came in meanwhile (a request held
		// in earlier middleware past the server's grace period, in a
		// registry this wait had not seen or had found empty).
		for {
			all := append(beginExit(engine.CodeGoingAway, "server shutting down"), h.live) // h.live again is harmless
			if !slices.ContainsFunc(all, (*registry).pending) {
				return nil
			}
			for _, r := range all {
				r.shutdown(engine.CodeGoingAway, "server shutting down")
			}
			for _, r := range all {
				if ended, first := r.waitShutdown(); !ended && first {
					h.logger.Warn("relays still open after shutdown wait", zap.Duration("waited", r.bound))
				}
			}
		}
	}
	h.live.drain(engine.CodeServiceRestart, "service restart", time.Duration(h.DrainPeriod))
	return nil
}

// engineConfig maps the handler's options onto the engine's.
func (h *Handler) engineConfig(rsv byte) engine.Config {
	ping := time.Duration(h.PingInterval)
	if ping < 0 {
		ping = 0
	}
	return engine.Config{
		PingInterval: ping,
		PongTimeout:  time.Duration(h.PongTimeout),
		WriteTimeout: time.Duration(h.WriteTimeout),
		CloseTimeout: time.Duration(h.CloseTimeout),
		StallTimeout: time.Duration(h.StallTimeout),
		AllowedRSV:   rsv,
		Loops:        !h.DisableEventLoops,
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
