package reliability

import (
	"bytes"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// TestTrafficMetricsWhileLive: caddy's /metrics shows a live connection's
// bytes and frames as they flow, both ways, before the connection ends
// (a connection that lives for hours must not show its traffic in one
// step when it ends), and the figures stay once it ended.
func TestTrafficMetricsWhileLive(t *testing.T) {
	t.Parallel()
	f := startRelay(t, relayOpts{caddy: rt.Options{Metrics: true}, options: []string{"ping_interval off"}})
	f.backend.Handle("/", echo)
	const (
		up   = `caddy_websocket_relay_bytes_total{direction="client_to_backend"}`
		down = `caddy_websocket_relay_bytes_total{direction="backend_to_client"}`
		upF  = `caddy_websocket_relay_frames_total{direction="client_to_backend"}`
	)
	read := func() map[string]float64 {
		t.Helper()
		m, err := f.caddy.Metrics()
		if err != nil {
			t.Fatalf("reading caddy's metrics: %v", err)
		}
		return m
	}
	before := read()
	cl := f.dial(t, "/live", rt.DialOptions{})
	payload := bytes.Repeat([]byte("x"), 1000)
	const n = 20
	for range n {
		if err := cl.WriteFrame(rt.ClientFrame(true, 0x2, payload)); err != nil {
			t.Fatal(err)
		}
		if got, err := cl.ReadFrame(5 * time.Second); err != nil || !bytes.Equal(got.Payload, payload) {
			t.Fatalf("echo: %d bytes, %v", len(got.Payload), err)
		}
	}
	// Client frames: 4-byte header with the 2-byte length, 4-byte mask.
	wantUp, wantDown := float64(n*(4+4+1000)), float64(n*(4+1000))
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := read()
		if m[up]-before[up] == wantUp && m[down]-before[down] == wantDown && m[upF]-before[upF] == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while the connection lives: %v up (%v frames), %v down; want %v and %v",
				m[up]-before[up], m[upF]-before[upF], m[down]-before[down], wantUp, wantDown)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cl.Close() // the backend gets 1001 and answers with a close frame
	time.Sleep(500 * time.Millisecond)
	if m := read(); m[up]-before[up] != wantUp || m[down]-before[down] < wantDown || m[down]-before[down] > wantDown+2+125 {
		t.Fatalf("after the end: %v up, %v down; want %v, and %v plus at most a close frame", m[up]-before[up], m[down]-before[down], wantUp, wantDown)
	}
}
