package wsrelay

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// observedHandler provisions a handler on upstreams with opts, its logs
// observed.
func observedHandler(t *testing.T, o relayconfig.Options) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	o.DrainPeriod = -1
	h := &Handler{Options: o}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Cleanup() })
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	return h, logs
}

// TestTryAgainHandshakeFlagPerTry: what a refusal after retries says it
// failed at is the last try's, as its errors are: a backend that
// accepted and hung up on the first try (restarting) and refuses dials
// on the last gets "no upstream reachable" (metric reason dial), not
// "backend handshake failed".
func TestTryAgainHandshakeFlagPerTry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close() // the first try's upgrade fails: EOF
		}
		ln.Close() // then dials are refused
	}()
	h, _ := observedHandler(t, relayconfig.Options{Upstreams: []string{addr}, Retries: 2,
		TryInterval: caddy.Duration(50 * time.Millisecond)})
	r := upgradeRequestFor(context.Background())
	_, _, err = h.connect(r, r, false)
	var failed *errConnect
	if !errors.As(err, &failed) {
		t.Fatalf("connect: %v", err)
	}
	if !strings.Contains(err.Error(), "the last: dialing upstream") {
		t.Fatalf("want the last try to be a failed dial: %v", err)
	}
	if failed.handshake {
		t.Errorf("last try only failed dials, yet handshake=true (answered 502 %q, metric reason handshake): %v",
			"backend handshake failed", err)
	}
}

// TestTryAgainHandshakeLogs: with lb_retries, an upstream whose upgrade
// fails (accepts and hangs up: docker-proxy with its container
// restarting) logs "backend handshake failed" at warn on the first try
// only (the later ones at debug), and the refusal is a warn line saying
// how many tries over how long.
func TestTryAgainHandshakeLogs(t *testing.T) {
	addr := stubServe(t, func(c net.Conn) { c.Close() })
	h, logs := observedHandler(t, relayconfig.Options{Upstreams: []string{addr}, Retries: 10,
		TryInterval: caddy.Duration(10 * time.Millisecond)})
	w := httptest.NewRecorder()
	r := upgradeRequestFor(context.Background())
	if err := h.ServeHTTP(w, r, nil); err != nil {
		t.Fatal(err)
	}
	if w.Code != 502 {
		t.Fatalf("status %d", w.Code)
	}
	warns := logs.FilterMessage("backend handshake failed").FilterLevelExact(zapcore.WarnLevel).Len()
	if warns > 1 {
		t.Errorf("one upgrade, one upstream: %d warn lines \"backend handshake failed\" (one per try)", warns)
	}
	found := false
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if f.Key == "error" && strings.Contains(f.Interface.(error).Error(), "tries over") {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no log line says how many tries over how long for a handshake refusal; lines: %d", logs.Len())
	}
}
