package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// TestStreamEndings: over both protocols, a backend killed mid-relay gets
// its client 1014; a client that resets its stream gets its backend 1001
// at once; a client that stalls mid-frame is dropped by stall_timeout.
func TestStreamEndings(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{})
	c := streamCaddy(t, a, "\t\t\tstall_timeout 1s")
	n := 0
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("HTTP/%d backend killed", proto), func(t *testing.T) {
			path := fmt.Sprintf("/kill%d/echo", proto)
			sc := dialStream(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}})
			bc := a.accept(t, path)
			sc.send(t, ws.NewTextFrame([]byte("x")))
			sc.read(t, 5*time.Second)
			bc.Kill(true)
			f := sc.read(t, 5*time.Second)
			if code, _ := ws.ParseCloseFrameData(f.Payload); f.Header.OpCode != ws.OpClose || code != 1014 {
				t.Fatalf("frame %v code %d, want close 1014", f.Header.OpCode, code)
			}
			sc.send(t, ws.NewCloseFrame(f.Payload))
			n++
			e := c.WaitConnClosed(n)
			t.Logf("log: %s %q %v", e[n-1].Str("closed_by"), e[n-1].Str("cause"), e[n-1].Num("close_code"))
		})
		t.Run(fmt.Sprintf("HTTP/%d client reset", proto), func(t *testing.T) {
			path := fmt.Sprintf("/rst%d/echo", proto)
			sc, cancel := dialStreamCtx(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}})
			bc := a.accept(t, path)
			sc.send(t, ws.NewTextFrame([]byte("x")))
			sc.read(t, 5*time.Second)
			at := time.Now()
			// Both directions: RST_STREAM (CANCEL) on HTTP/2; on HTTP/3
			// STOP_SENDING, and RESET_STREAM for the failed body.
			sc.out.CloseWithError(errors.New("client resets"))
			sc.resp.Body.Close()
			cancel()
			rec := bc.waitClosed(t, 5*time.Second)
			if rec.Code != 1001 || rec.At.Sub(at) > time.Second {
				t.Fatalf("backend %+v after %v, want 1001 at once", rec, rec.At.Sub(at))
			}
			n++
			c.WaitConnClosed(n)
		})
		t.Run(fmt.Sprintf("HTTP/%d stall mid-frame", proto), func(t *testing.T) {
			path := fmt.Sprintf("/stall%d/echo", proto)
			sc := dialStream(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}})
			bc := a.accept(t, path)
			at := time.Now()
			sc.out.Write([]byte{0x81}) // a frame's first byte, then nothing
			rec := bc.waitClosed(t, 5*time.Second)
			if rec.Code != 1001 || rec.At.Sub(at) > 2500*time.Millisecond {
				t.Fatalf("backend %+v after %v, want 1001 after stall_timeout 1s", rec, rec.At.Sub(at))
			}
			n++
			stalled := 0
			for _, e := range c.WaitConnClosed(n) {
				if e.Str("cause") == "stalled mid-frame" {
					stalled++
				}
			}
			if stalled != proto-1 {
				t.Errorf("%d lines with cause stalled mid-frame, want %d", stalled, proto-1)
			}
		})
	}
}

// TestStreamReloadThenExit: a reload with live stream relays sends them
// 1012 spread over drain_period; the old servers' shutdowns then finish,
// so an exit afterwards is quick.
func TestStreamReloadThenExit(t *testing.T) {
	t.Parallel()
	a := newApp(t, appOpts{})
	c := newCaddy(t, caddyOpts{Admin: true, Env: []string{"GODEBUG=http2xconnect=1"}})
	site := func(opt string) string {
		return fmt.Sprintf("https://localhost:%d {\n\ttls internal\n\twebsocket_relay %s {\n\t\tdrain_period 2s\n\t\t%s\n\t}\n}\n", c.HTTPSPort, a.Addr, opt)
	}
	c.Start(site(""))
	var scs []*streamClient
	for i, proto := range []int{2, 2, 3, 3} {
		path := fmt.Sprintf("/r%d/echo", i)
		sc := dialStream(t, c, proto, path, http.Header{"Sec-Websocket-Version": {"13"}})
		a.accept(t, path)
		scs = append(scs, sc)
	}
	start := time.Now()
	c.load(t, c.adapt(c.Caddyfile(site("ping_interval 2s"))))
	var ats []time.Duration
	for i, sc := range scs {
		f := sc.read(t, 6*time.Second)
		code, _ := ws.ParseCloseFrameData(f.Payload)
		if f.Header.OpCode != ws.OpClose || code != 1012 {
			t.Fatalf("stream %d: %v %d, want close 1012", i, f.Header.OpCode, code)
		}
		ats = append(ats, time.Since(start))
		sc.send(t, ws.NewCloseFrame(f.Payload))
		io.Copy(io.Discard, sc.resp.Body)
		sc.done()
	}
	t.Logf("1012s at %v", ats)
	c.WaitConnClosed(4)
	time.Sleep(500 * time.Millisecond)
	c.Signal(syscall.SIGTERM)
	if !c.WaitExit(10 * time.Second) {
		t.Fatal("caddy still running 10s after SIGTERM (an old server's shutdown never finished?)")
	}
}

// TestStreamExitDuringUpgrade: caddy is told to exit while a stream's
// upgrade waits for the backend's answer; the answer then comes: the
// client gets 1001 and caddy exits.
func TestStreamExitDuringUpgrade(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := make(chan struct{})
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		<-release
		fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", upgrade.AcceptFor(req.Header.Get("Sec-WebSocket-Key")))
		io.Copy(io.Discard, conn)
	}()
	c := newCaddy(t, caddyOpts{Env: []string{"GODEBUG=http2xconnect=1"}})
	c.Start(fmt.Sprintf("https://localhost:%d {\n\ttls internal\n\twebsocket_relay %s\n}\n", c.HTTPSPort, ln.Addr()))
	got := make(chan *streamClient, 1)
	go func() { got <- dialStream(t, c, 3, "/pending", http.Header{"Sec-Websocket-Version": {"13"}}) }()
	time.Sleep(time.Second)
	c.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	close(release)
	sc := <-got
	if sc.resp.StatusCode != 200 {
		t.Fatalf("status %d", sc.resp.StatusCode)
	}
	f := sc.read(t, 5*time.Second)
	if code, _ := ws.ParseCloseFrameData(f.Payload); f.Header.OpCode != ws.OpClose || code != 1001 {
		t.Fatalf("%v %d, want 1001", f.Header.OpCode, code)
	}
	sc.send(t, ws.NewCloseFrame(f.Payload))
	io.Copy(io.Discard, sc.resp.Body)
	sc.done()
	if !c.WaitExit(10 * time.Second) {
		t.Fatal("caddy still running 10s after SIGTERM")
	}
}
