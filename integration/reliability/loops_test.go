package reliability

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// TestEventLoopsOnAndOff: idle plain relays move onto the event loops (the
// caddy_websocket_relay_event_loop_connections gauge counts them) unless
// their directive says `event_loops off`; relays on loops still echo byte
// for byte, pings and pongs included, and close with the usual handshake.
func TestEventLoopsOnAndOff(t *testing.T) {
	t.Parallel()
	b := rt.NewBackend(t)
	b.Handle("/", func(bc *rt.BackendConn) {
		if bc.Accept() != nil {
			return
		}
		for {
			f, err := bc.ReadFrame(30 * time.Second)
			if err != nil {
				return
			}
			if bc.Send(f.Fin, f.Op, f.Payload) != nil || f.Op == 0x8 {
				return
			}
		}
	})
	c := rt.NewCaddy(t, rt.Options{Metrics: true})
	c.Start(func(c *rt.Caddy) string {
		return fmt.Sprintf("http://:%d {\n%s%s}\n", c.HTTPPort,
			relayBlock("/off/*", b.Addr, []string{"event_loops off"}), relayBlock("", b.Addr, nil))
	})
	gauge := func() float64 {
		t.Helper()
		m, err := c.Metrics()
		if err != nil {
			t.Fatalf("reading caddy's metrics: %v", err)
		}
		return m["caddy_websocket_relay_event_loop_connections"]
	}
	waitGauge := func(want float64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); gauge() != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("event_loop_connections is %v, want %v", gauge(), want)
			}
		}
	}
	open := func(path string, n int) []*rt.Client {
		var cs []*rt.Client
		for range n {
			cl, err := rt.Dial(c.HTTPAddr(), path, rt.DialOptions{})
			if err != nil {
				t.Fatalf("dialing %s: %v", path, err)
			}
			t.Cleanup(func() { cl.Close() })
			cs = append(cs, cl)
		}
		return cs
	}
	echo := func(cl *rt.Client, op byte, payload []byte) {
		t.Helper()
		if err := cl.WriteFrame(rt.ClientFrame(true, op, payload)); err != nil {
			t.Fatal(err)
		}
		f, err := cl.ReadFrame(5 * time.Second)
		if err != nil || f.Op != op || !bytes.Equal(f.Payload, payload) {
			t.Fatalf("echo of op %#x: got op %#x %d bytes, %v", op, f.Op, len(f.Payload), err)
		}
	}
	looped := open("/on", 5)
	waitGauge(5)
	off := open("/off/x", 5)
	time.Sleep(300 * time.Millisecond) // long enough for them to park, were they to
	waitGauge(5)
	for _, cl := range append(looped, off...) {
		echo(cl, 0x2, bytes.Repeat([]byte{0xa5}, 1000))
		echo(cl, 0x9, []byte("app ping"))
		echo(cl, 0x1, []byte("hello"))
	}
	// Small frames, pings and pongs do not take a relay off its loop (after
	// a hand-back it would be off it for a second).
	if g := gauge(); g != 5 {
		t.Fatalf("event_loop_connections is %v after the echoes, want 5", g)
	}
	for _, cl := range append(looped, off...) {
		if err := cl.WriteFrame(rt.ClientFrame(true, 0x8, rt.ClosePayload(1000, "bye"))); err != nil {
			t.Fatal(err)
		}
		f, err := cl.ReadFrame(5 * time.Second)
		if code, _ := f.CloseCode(); err != nil || f.Op != 0x8 || code != 1000 {
			t.Fatalf("close: got op %#x code %d, %v", f.Op, code, err)
		}
	}
	waitGauge(0)
	c.CheckNoPanic()
}
