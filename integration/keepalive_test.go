package integration

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	gws "github.com/gorilla/websocket"
)

// TestRelayPings wants a ping to an idle client after ping_interval, the
// client's pongs consumed by the relay, the connection kept open across
// several ping rounds, and no ping to a client that keeps talking.
func TestRelayPings(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	for _, sc := range schemes {
		t.Run(sc.name+"/idle", func(t *testing.T) {
			t.Parallel()
			path := "/echo/" + t.Name()
			c := dialRaw(t, f.URL(sc.secure, path), f.Caddy.TLSConfig(), nil)
			bc := f.App.accept(t, path)
			c.MustWrite(t, true, ws.OpText, []byte("hi"))
			if got, _ := c.ReadData(t, 5*time.Second); string(got.Payload) != "hi" {
				t.Fatalf("echo: %q", got.Payload)
			}
			last := time.Now()
			const rounds = 4
			for i := 0; i < rounds; i++ {
				p := c.MustRead(t, pingInterval+time.Second)
				gap := time.Since(last)
				if p.OpCode != ws.OpPing {
					t.Fatalf("round %d: got %v %q from an idle connection, want a relay ping", i, p.OpCode, p.Payload)
				}
				if gap < pingInterval-50*time.Millisecond {
					t.Errorf("round %d: relay ping %v after the client's last frame, want at least ping_interval %v", i, gap, pingInterval)
				}
				c.MustWrite(t, true, ws.OpPong, p.Payload)
				last = time.Now()
			}
			// 4 rounds outlast ping_interval + pong_timeout many times over.
			c.MustWrite(t, true, ws.OpText, []byte("still here"))
			if got, _ := c.ReadData(t, 5*time.Second); string(got.Payload) != "still here" {
				t.Fatalf("echo after %d ping rounds: %q", rounds, got.Payload)
			}
			bc.noPingsOrPongs(t)
			select {
			case rec := <-bc.Closed:
				t.Fatalf("the backend connection ended during the ping rounds: %+v", rec)
			default:
			}
			c.MustWrite(t, true, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
			if rec := bc.waitClosed(t, 5*time.Second); rec.Code != 1000 {
				t.Errorf("backend got close code %d, want 1000", rec.Code)
			}
			e := f.Caddy.WaitConnClosedFrom(c.Conn.LocalAddr().String())
			checkConnLog(t, e, connLogWant{ClosedBy: "client", Cause: "client closed", CloseCode: 1000,
				MinPings: rounds, MinPongs: rounds})
		})
		t.Run(sc.name+"/busy", func(t *testing.T) {
			t.Parallel()
			path := "/echo/" + t.Name()
			c := dialRaw(t, f.URL(sc.secure, path), f.Caddy.TLSConfig(), nil)
			f.App.accept(t, path)
			deadline := time.Now().Add(3 * pingInterval)
			for time.Now().Before(deadline) {
				c.MustWrite(t, true, ws.OpText, []byte("tick"))
				got, pings := c.ReadData(t, 5*time.Second)
				if string(got.Payload) != "tick" || len(pings) > 0 {
					t.Fatalf("busy client: got %q and %d pings, want the echo and no relay ping", got.Payload, len(pings))
				}
				time.Sleep(pingInterval / 4)
			}
		})
	}
}

// TestPeerPingsPassThrough wants the peers' own pings and pongs relayed:
// a client ping reaches the backend and its pong comes back, and a backend
// ping reaches the client and its pong goes back.
func TestPeerPingsPassThrough(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			path := "/echo/" + t.Name()
			c := dialRaw(t, f.URL(sc.secure, path), f.Caddy.TLSConfig(), nil)
			bc := f.App.accept(t, path)
			c.MustWrite(t, true, ws.OpPing, []byte("client-ping-1"))
			if got := within(t, bc.Pings, 5*time.Second, "client ping at the backend"); got != "client-ping-1" {
				t.Errorf("backend got ping %q, want client-ping-1", got)
			}
			if pong := readUntil(t, c, ws.OpPong); string(pong.Payload) != "client-ping-1" {
				t.Errorf("client got pong %q, want client-ping-1", pong.Payload)
			}
			if err := bc.Ping("backend-ping-1"); err != nil {
				t.Fatal(err)
			}
			for {
				p := readUntil(t, c, ws.OpPing)
				c.MustWrite(t, true, ws.OpPong, p.Payload)
				if string(p.Payload) == "backend-ping-1" {
					break
				}
			}
			if got := within(t, bc.Pongs, 5*time.Second, "client pong at the backend"); got != "backend-ping-1" {
				t.Errorf("backend got pong %q, want backend-ping-1", got)
			}
		})
	}
}

// readUntil reads frames until one with opcode op arrives, answering
// relay pings on the way when op is not a ping.
func readUntil(t *testing.T, c *rawClient, op ws.OpCode) frame {
	t.Helper()
	for {
		f := c.MustRead(t, 5*time.Second)
		if f.OpCode == op {
			return f
		}
		if f.OpCode == ws.OpPing {
			c.MustWrite(t, true, ws.OpPong, f.Payload)
		}
	}
}

// TestDeadClient has a client stop answering: the backend must get close
// 1001 within ping_interval + pong_timeout + 1 s of the client's last
// frame, and the client's connection must be closed.
func TestDeadClient(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	// The group returns when its parallel subtests are done.
	t.Run("group", func(t *testing.T) {
		for _, sc := range schemes {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				testDeadClient(t, f, sc.secure)
			})
		}
	})
	for _, e := range f.Caddy.WaitConnClosed(2) {
		checkConnLog(t, e, connLogWant{ClosedBy: "relay", Cause: "ping timeout", CloseCode: 1001, MinC2BMsg: 1, MinC2B: len("last words")})
		// The client's system took every byte, the ping included, and the
		// client sent nothing after its last words: its socket held
		// nothing either way when the relay gave up on it.
		for _, field := range []string{"client_unread_bytes", "client_unacked_bytes"} {
			if n, ok := e.NumOK(field); !ok || n != 0 {
				t.Errorf("%s = %v, want 0 for a client that took everything and sent nothing: %s", field, e[field], e)
			}
		}
		// -1 unless the TLS leg was parked; never bytes held behind a park.
		if n, ok := e.NumOK("client_tls_held_bytes"); !ok || n > 0 {
			t.Errorf("client_tls_held_bytes = %v, want 0 or -1: %s", e["client_tls_held_bytes"], e)
		}
	}
}

// testDeadClient is one connection of TestDeadClient.
func testDeadClient(t *testing.T, f *fixture, secure bool) {
	path := "/echo/" + t.Name()
	c := dialRaw(t, f.URL(secure, path), f.Caddy.TLSConfig(), nil)
	bc := f.App.accept(t, path)
	c.MustWrite(t, true, ws.OpText, []byte("last words"))
	lastFrame := time.Now()
	// From here on the client neither reads nor writes.
	rec := bc.waitClosed(t, 10*time.Second)
	took := rec.At.Sub(lastFrame)
	limit := pingInterval + pongTimeout + time.Second
	if rec.Code != 1001 {
		t.Errorf("backend got close code %d (%v), want 1001", rec.Code, rec.Err)
	}
	if took > limit {
		t.Errorf("backend closed %v after the client's last frame, want at most %v", took, limit)
	}
	if took < pingInterval+pongTimeout-100*time.Millisecond {
		t.Errorf("backend closed %v after the client's last frame, before ping_interval + pong_timeout", took)
	}
	// The client's TCP connection ends soon after.
	if err := drainUntilEOF(c, 5*time.Second); err != nil {
		t.Errorf("the dead client's connection: %v", err)
	}
}

// drainUntilEOF reads frames until the connection ends; it fails if that
// takes longer than d.
func drainUntilEOF(c *rawClient, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		_, err := c.Read(time.Until(deadline))
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return errors.New("still open")
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			return nil
		}
		return nil // a reset ends it too
	}
}

// TestSlowClientWriteTimeout has a client stop reading while the backend
// pushes: a write to the client that cannot finish within write_timeout
// marks it dead, and the backend gets close 1001.
func TestSlowClientWriteTimeout(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{Options: []string{"ping_interval off", "write_timeout 1s"}})
	c := dialRaw(t, f.URL(false, "/push"), nil, nil)
	bc := f.App.accept(t, "/push")
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	big := payload(1<<20, false, 11)
	go func() {
		for {
			if err := bc.Send(gws.BinaryMessage, big); err != nil {
				return
			}
		}
	}()
	rec := bc.waitClosed(t, 15*time.Second)
	if rec.Code != 1001 {
		t.Errorf("backend got close code %d (%v), want 1001", rec.Code, rec.Err)
	}
	logs := f.Caddy.WaitConnClosed(1)
	checkConnLog(t, logs[0], connLogWant{ClosedBy: "relay", CloseCode: 1001})
}

// TestPingsBetweenFrames keeps the backend streaming 256 KiB frames to a
// client that sends nothing but pongs: relay pings must arrive between
// whole frames (every data frame parses and matches byte for byte) and
// the client must stay connected.
func TestPingsBetweenFrames(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	c := dialRaw(t, f.URL(false, "/push/stream"), nil, nil)
	bc := f.App.accept(t, "/push/stream")
	const size = 256 << 10
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		i := 0
		defer func() { sent <- i }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := bc.Send(gws.BinaryMessage, payload(size, false, uint64(i%8))); err != nil {
				return
			}
			i++
		}
	}()
	deadline := time.Now().Add(3*pingInterval + pingInterval/2)
	got, pings := 0, 0
	for time.Now().Before(deadline) {
		fr := c.MustRead(t, 5*time.Second)
		switch fr.OpCode {
		case ws.OpPing:
			pings++
			c.MustWrite(t, true, ws.OpPong, fr.Payload)
		case ws.OpBinary:
			if !fr.Fin || !bytes.Equal(fr.Payload, payload(size, false, uint64(got%8))) {
				t.Fatalf("data frame %d: fin=%v, %d bytes, not the bytes sent", got, fr.Fin, len(fr.Payload))
			}
			got++
		default:
			t.Fatalf("unexpected %v frame after %d data frames", fr.OpCode, got)
		}
	}
	close(stop)
	n := <-sent
	for got < n {
		fr := c.MustRead(t, 5*time.Second)
		if fr.OpCode == ws.OpBinary {
			got++
		}
	}
	if pings < 2 {
		t.Errorf("%d relay pings in %v to a client that only answered pings, want at least 2", pings, 3*pingInterval+pingInterval/2)
	}
	bc.noPingsOrPongs(t)
	select {
	case rec := <-bc.Closed:
		t.Fatalf("the connection ended while streaming: %+v", rec)
	default:
	}
}
