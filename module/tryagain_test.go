package wsrelay

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// TestTryAgainBounds: without lb_try_duration or lb_retries there is no
// second try; lb_retries bounds the tries after the first, and
// lb_try_duration those that start after it passed; each comes after
// lb_try_interval.
func TestTryAgainBounds(t *testing.T) {
	ms := func(n int) caddy.Duration { return caddy.Duration(time.Duration(n) * time.Millisecond) }
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		o     relayconfig.Options
		start time.Duration // how long ago the upgrade arrived
		tries int
		want  bool
	}{
		{"neither", relayconfig.Options{}, 0, 1, false},
		{"retries left", relayconfig.Options{Retries: 2, TryInterval: ms(1)}, 0, 2, true},
		{"retries used", relayconfig.Options{Retries: 2, TryInterval: ms(1)}, 0, 3, false},
		{"within the duration", relayconfig.Options{TryDuration: ms(500), TryInterval: ms(1)}, 100 * time.Millisecond, 9, true},
		{"past the duration", relayconfig.Options{TryDuration: ms(500), TryInterval: ms(1)}, 600 * time.Millisecond, 2, false},
		{"retries used within the duration", relayconfig.Options{TryDuration: ms(500), Retries: 1, TryInterval: ms(1)}, 0, 2, false},
	} {
		h := &Handler{Options: tc.o}
		if got := h.tryAgain(ctx, time.Now().Add(-tc.start), tc.tries); got != tc.want {
			t.Errorf("%s: tryAgain %v, want %v", tc.name, got, tc.want)
		}
	}
	h := &Handler{Options: relayconfig.Options{TryDuration: ms(5000), TryInterval: ms(150)}}
	start := time.Now()
	if !h.tryAgain(ctx, start, 1) || time.Since(start) < 150*time.Millisecond {
		t.Errorf("the next try came after %s, want lb_try_interval (150ms)", time.Since(start))
	}
}

// TestTryAgainStops: the wait for the next try ends at once, without
// one, when the client goes away or the configuration is unloaded (its
// registry closes), so that neither a gone client nor a reload holds
// an upgrade for lb_try_duration.
func TestTryAgainStops(t *testing.T) {
	h := &Handler{Options: relayconfig.Options{TryDuration: caddy.Duration(time.Hour), TryInterval: caddy.Duration(time.Hour)},
		live: newRegistry(time.Second)}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if h.tryAgain(ctx, start, 1) || time.Since(start) > 2*time.Second {
		t.Fatalf("client gone: another try, or the wait took %s", time.Since(start))
	}
	time.AfterFunc(50*time.Millisecond, func() { h.live.snapshot(1001, "unloaded") })
	start = time.Now()
	if h.tryAgain(context.Background(), start, 1) || time.Since(start) > 2*time.Second {
		t.Fatalf("registry closed: another try, or the wait took %s", time.Since(start))
	}
}
