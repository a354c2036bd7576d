//go:build linux

package engine

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// unixPair returns both ends of a Unix stream socket connection.
func unixPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "b.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	d, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	if a == nil {
		t.Fatal("the Unix listener accepted nothing")
	}
	return d, a
}

// TestUnixBackendLeg: a backend reached over a Unix socket (an upstream
// "unix//path") is relayed like a TCP one: the relay joins an event loop,
// relays small frames there and pings the client, hands a frame cut
// across reads back to the goroutines, returns to a loop, and ends with
// a close handshake.
func TestUnixBackendLeg(t *testing.T) {
	shortLinger(t, 20*time.Millisecond)
	cfg := loopConfig()
	cfg.PingInterval = 50 * time.Millisecond
	cfg.PongTimeout = 2 * time.Second
	h := startPairs(t, cfg, true,
		func() (net.Conn, net.Conn) { return loopbackPair(t) },
		func() (net.Conn, net.Conn) { return unixPair(t) })

	waitOnLoop(t, h.session, 2*time.Second)
	entries := loopEntries.Load()
	for i := range 50 {
		up := ws.MaskFrame(ws.NewTextFrame(payloadOf(1 + i)))
		h.client.send(up)
		sameFrame(t, h.backend.next(2*time.Second), up)
		down := ws.NewBinaryFrame(payloadOf(1 + 3*i))
		h.backend.send(down)
		f := h.client.next(2 * time.Second)
		for f.Header.OpCode == ws.OpPing { // a relay ping: answer it
			h.client.send(ws.MaskFrame(ws.NewPongFrame(f.Payload)))
			f = h.client.next(2 * time.Second)
		}
		sameFrame(t, f, down)
	}
	if loopEntries.Load() != entries || !onLoop(h.session) {
		t.Fatal("the relay left the loop while relaying small frames")
	}

	big := ws.NewBinaryFrame(payloadOf(300 << 10)) // cut across reads
	h.backend.send(big)
	f := h.client.next(5 * time.Second)
	for f.Header.OpCode == ws.OpPing {
		h.client.send(ws.MaskFrame(ws.NewPongFrame(f.Payload)))
		f = h.client.next(5 * time.Second)
	}
	sameFrame(t, f, big)
	bigUp := ws.MaskFrame(ws.NewBinaryFrame(payloadOf(200 << 10)))
	h.client.send(bigUp)
	sameFrame(t, h.backend.next(5*time.Second), bigUp)
	waitOnLoop(t, h.session, 2*time.Second)

	// Idle on the loop long enough for relay pings, answered.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		p := h.client.next(2 * time.Second)
		if p.Header.OpCode != ws.OpPing {
			t.Fatalf("got %v while idle, want a relay ping", p.Header.OpCode)
		}
		h.client.send(ws.MaskFrame(ws.NewPongFrame(p.Payload)))
	}
	r := closeBoth(t, h)
	if r.PingsSent == 0 || r.PongsReceived == 0 {
		t.Fatalf("pings sent %d, pongs received %d, want some of each", r.PingsSent, r.PongsReceived)
	}
	if r.ClientToBackend.Frames < 52 || r.BackendToClient.Frames < 52 {
		t.Fatalf("frames %d / %d, want at least 52 each way", r.ClientToBackend.Frames, r.BackendToClient.Frames)
	}
}
