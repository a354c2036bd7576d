package reliability

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// echo is a backend handler that accepts the upgrade and sends every
// frame back unmasked until a close frame, which it answers.
func echo(bc *rt.BackendConn) {
	if bc.Accept() != nil {
		return
	}
	for {
		f, err := bc.ReadFrame(time.Minute)
		if err != nil {
			return
		}
		if err := bc.Send(f.Fin, f.Op, f.Payload); err != nil || f.Op == rt.OpClose {
			return
		}
	}
}

// roundTrip sends one masked text frame and reads it back.
func roundTrip(c *rt.Client, payload []byte, d time.Duration) error {
	if err := c.Send(true, rt.OpText, payload); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	for {
		f, err := c.ReadFrame(d)
		if err != nil {
			return fmt.Errorf("reading the echo: %w", err)
		}
		if f.Op == rt.OpPing {
			if err := c.Send(true, rt.OpPong, f.Payload); err != nil {
				return err
			}
			continue
		}
		if f.Op != rt.OpText || !bytes.Equal(f.Payload, payload) {
			return fmt.Errorf("echo is %#x frame of %d bytes, want the text sent", f.Op, len(f.Payload))
		}
		return nil
	}
}

// TestHandshakeDribbleCut sends an upgrade request one byte per second:
// Caddy's HTTP server (timeouts { read_header 2s }) must cut it at 2s,
// before the request is complete and without any answer.
func TestHandshakeDribbleCut(t *testing.T) {
	t.Parallel()
	const readHeader = 2 * time.Second
	f := startRelay(t, relayOpts{caddy: rt.Options{ReadHeader: readHeader}})
	f.backend.Handle("/dribble", echo)
	// Caddy's header timer starts after the connection is made, so the
	// cut is measured from before the dial.
	start := time.Now()
	conn, err := rt.DialTCP(f.caddy.HTTPAddr(), rt.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := rt.UpgradeRequest(f.caddy.HTTPAddr(), "/dribble", rt.NewKey(), nil)
	var sent atomic.Int64
	go func() {
		for _, b := range req {
			if _, err := conn.Write([]byte{b}); err != nil {
				return
			}
			sent.Add(1)
			time.Sleep(time.Second)
		}
	}()
	got, err := rt.WaitEnd(conn, conn, 15*time.Second)
	cut := time.Since(start)
	if !rt.IsEnd(err) {
		t.Fatalf("the dribbled handshake was not cut within 15s: %v", err)
	}
	if cut < readHeader || cut > readHeader+3*time.Second {
		t.Errorf("cut after %v, want about read_header %v", cut, readHeader)
	}
	if n := sent.Load(); n >= int64(len(req)) {
		t.Errorf("all %d bytes of the request went out before the cut", n)
	}
	// Go's HTTP server may say 400 before it hangs up; it must never
	// let the upgrade through.
	if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 4")) {
		t.Errorf("the server answered the unfinished request with %q, want nothing or a 4xx", got)
	}
	answer := "no answer"
	if i := bytes.IndexByte(got, '\r'); i > 0 {
		answer = fmt.Sprintf("answer %q", got[:i])
	}
	t.Logf("handshake dribbled at 1 byte/s cut after %v (%d of %d bytes sent), %s",
		cut.Round(10*time.Millisecond), sent.Load(), len(req), answer)
	// The relay still serves a well-behaved client.
	c := f.dial(t, "/dribble", rt.DialOptions{})
	if err := roundTrip(c, []byte("still here"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestHalfHandshakeFlood holds 5,000 connections that sent half an
// upgrade request and stalled (from 127.0.0.2-5), then checks that a real
// client is served promptly, and that caddy cuts every stalled connection
// at read_header and gives their descriptors back.
func TestHalfHandshakeFlood(t *testing.T) {
	t.Parallel()
	const (
		n          = 5000
		readHeader = 10 * time.Second
	)
	f := startRelay(t, relayOpts{caddy: rt.Options{ReadHeader: readHeader}})
	f.backend.Handle("/flood", echo)
	baseFDs, err := rt.FDCount(f.caddy.PID())
	if err != nil {
		t.Fatal(err)
	}
	half := []byte("GET /flood HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	conns := make([]net.Conn, n)
	opened := make([]time.Time, n)
	var failed atomic.Int64
	start := time.Now()
	// In batches, each accepted by caddy before the next, so that the
	// kernel's accept queue never overflows (that would drop connections
	// before caddy ever sees them, and prove nothing about caddy).
	const batch = 250
	for lo := 0; lo < n; lo += batch {
		var wg sync.WaitGroup
		for w := 0; w < 25; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := lo + w; i < min(lo+batch, n); i += 25 {
					// Caddy's header timer starts after the connection
					// is made: its cut is measured from before the dial.
					opened[i] = time.Now()
					c, err := rt.DialTCP(f.caddy.HTTPAddr(), rt.DialOptions{LocalIP: sourceIPs[i%len(sourceIPs)]})
					if err == nil {
						_, err = c.Write(half)
					}
					if err != nil {
						failed.Add(1)
						continue
					}
					conns[i] = c
				}
			}(w)
		}
		wg.Wait()
		want := baseFDs + min(lo+batch, n) - batch/5
		if got := waitHeld(f.caddy, want, 5*time.Second); got < want {
			t.Fatalf("caddy accepted only %d of %d stalled connections %v after the test began",
				got-baseFDs, min(lo+batch, n), time.Since(start).Round(time.Millisecond))
		}
	}
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	openTime := time.Since(start)
	if failed.Load() > 0 {
		t.Fatalf("%d of %d stalled connections could not be opened", failed.Load(), n)
	}
	// The kernel completes the connections before caddy accepts them.
	held := waitHeld(f.caddy, baseFDs+n*99/100, 10*time.Second) - baseFDs
	if held < n*99/100 {
		t.Errorf("caddy holds %d more descriptors than at start, want about %d", held, n)
	}
	// A real client, while all of them are stalled.
	t0 := time.Now()
	c := f.dial(t, "/flood", rt.DialOptions{})
	if err := roundTrip(c, []byte("served"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	served := time.Since(t0)
	if served > 2*time.Second {
		t.Errorf("the real client took %v to be served beside %d stalled connections, want under 2s", served, n)
	}
	c.Close()
	t.Logf("%d half handshakes opened in %v, caddy held %d descriptors for them; a real client was served in %v",
		n, openTime.Round(time.Millisecond), held, served.Round(time.Millisecond))
	cutAll(t, conns, opened, readHeader)
	waitFDs(t, f.caddy, baseFDs, 3, 15*time.Second)
	f.caddy.CheckNoPanic()
}

// waitHeld waits until caddy has want descriptors open (d at most) and
// returns how many it has.
func waitHeld(c *rt.Caddy, want int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		n, _ := rt.FDCount(c.PID())
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cutAll checks that caddy ends every stalled connection no sooner than
// readHeader after it was dialled (and within 10 s of that), with no
// answer.
func cutAll(t *testing.T, conns []net.Conn, opened []time.Time, readHeader time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	var early, late, answered atomic.Int64
	var slowest atomic.Int64
	var sample atomic.Value
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := rt.WaitEnd(c, c, readHeader+10*time.Second)
			after := time.Since(opened[i])
			switch {
			case !rt.IsEnd(err):
				late.Add(1)
			case after < readHeader:
				early.Add(1)
				sample.CompareAndSwap(nil, fmt.Sprintf("%v after %v", err, after.Round(time.Millisecond)))
			}
			if len(got) > 0 {
				answered.Add(1)
			}
			for {
				old := slowest.Load()
				if int64(after) <= old || slowest.CompareAndSwap(old, int64(after)) {
					break
				}
			}
		}()
	}
	wg.Wait()
	if late.Load() > 0 || early.Load() > 0 || answered.Load() > 0 {
		t.Errorf("of %d stalled connections, %d were not cut within read_header+10s, %d were cut before read_header (e.g. %v), %d got an answer",
			len(conns), late.Load(), early.Load(), sample.Load(), answered.Load())
	}
	t.Logf("all %d stalled connections cut, the last %v after it opened (read_header %v)", len(conns), time.Duration(slowest.Load()).Round(10*time.Millisecond), readHeader)
}

// waitFDs waits until caddy's descriptor count is back within tol of base.
func waitFDs(t *testing.T, c *rt.Caddy, base, tol int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n, err := rt.FDCount(c.PID())
		if err != nil {
			t.Fatal(err)
		}
		if n <= base+tol {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("caddy has %d descriptors open %v later, %d at start", n, d, base)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMidFrameStall announces a 4 GiB frame and stalls. With stall_timeout
// 2s the relay gives up on the client: the client's connection is closed
// with no close frame (the stall is inside the client's own frame). When
// nothing of the frame reached the backend yet, the backend gets 1001;
// when part of it did, the backend's frame can never be finished and its
// connection is closed too, after exactly the bytes the client sent.
func TestMidFrameStall(t *testing.T) {
	t.Parallel()
	const stall = 2 * time.Second
	f := startRelay(t, relayOpts{options: []string{"stall_timeout 2s", "ping_interval 10s", "pong_timeout 10s", "close_timeout 2s"}})
	for _, tc := range []struct {
		name string
		sent int // payload bytes sent before the stall
	}{{"header only", 0}, {"header and part of the payload", 3000}} {
		t.Run(tc.name, func(t *testing.T) {
			path := fmt.Sprintf("/stall/%d", tc.sent)
			backendEnd := make(chan rt.Ending, 1)
			var partial atomic.Int64
			f.backend.Handle(path, func(bc *rt.BackendConn) {
				if bc.Accept() != nil {
					return
				}
				h, n, err := rt.ReadHeader(bc.R)
				if err != nil {
					backendEnd <- rt.Ending{Err: err}
					return
				}
				if h.Op == rt.OpClose {
					p := make([]byte, n)
					_, err := io.ReadFull(bc.R, p)
					rt.Cipher(p, h.Mask, 0)
					h.Payload = p
					backendEnd <- rt.Ending{Close: &h, Err: err}
					_ = bc.Send(true, rt.OpClose, p)
					return
				}
				got, err := rt.WaitEnd(bc.R, bc.Conn, 15*time.Second)
				partial.Store(int64(len(got)))
				backendEnd <- rt.Ending{Data: []rt.Frame{h}, Err: err}
			})
			c := f.dial(t, path, rt.DialOptions{})
			mask := rt.NewMask()
			payload := bytes.Repeat([]byte("x"), tc.sent)
			rt.Cipher(payload, mask, 0)
			start := time.Now()
			if err := c.Write(append(rt.Header(true, 0, rt.OpBinary, true, mask, 4<<30), payload...)); err != nil {
				t.Fatal(err)
			}
			got, err := rt.WaitEnd(c.R, c.Conn, stall+10*time.Second)
			cut := time.Since(start)
			if !rt.IsEnd(err) {
				t.Fatalf("the stalled client was not cut within %v: %v", stall+10*time.Second, err)
			}
			if len(got) > 0 {
				t.Errorf("the stalled client got %d bytes (%x...), want its connection closed with no close frame", len(got), got[:min(len(got), 16)])
			}
			if cut < stall || cut > stall+3*time.Second {
				t.Errorf("the client was cut after %v, want about stall_timeout %v", cut, stall)
			}
			bEnd := <-backendEnd
			if tc.sent == 0 {
				expectClose(t, "backend", bEnd, 1001, "")
			} else {
				if bEnd.Close != nil || !rt.IsEnd(bEnd.Err) || partial.Load() != int64(tc.sent) {
					t.Errorf("backend: close %v, end %v, %d payload bytes; want its connection ended after the %d bytes the client sent",
						bEnd.Close, bEnd.Err, partial.Load(), tc.sent)
				}
			}
			lines := f.caddy.WaitLogs(1, 10*time.Second, rt.ConnClosedFrom(c.LocalAddr()))
			if len(lines) != 1 {
				t.Fatalf("%d \"connection closed\" lines for the stalled client, want 1", len(lines))
			}
			t.Logf("cut after %v; log: closed_by %q, cause %q, close_code %v", cut.Round(10*time.Millisecond),
				lines[0].Str("closed_by"), lines[0].Str("cause"), lines[0].Num("close_code"))
		})
	}
	f.caddy.CheckNoPanic()
}
