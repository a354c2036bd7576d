package engine

import (
	"crypto/tls"
	"math/rand"
	"net"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Tests of idle TLS legs: they park on the socket beneath crypto/tls
// when crypto/tls holds no bytes, and never when it does.

// TestTLSLayout: the crypto/tls fields that tell whether a TLS leg may
// park are found on this Go version. If this fails after a Go upgrade,
// idle wss legs silently keep a goroutine each: fix tlspark.go.
func TestTLSLayout(t *testing.T) {
	if theTLSLayout() == nil {
		t.Fatalf("crypto/tls layout not recognised: %s", tlsLayoutErr)
	}
	cTest, cRelay := tlsLegPair(t)
	if tlsSocket(cRelay) == nil {
		t.Fatal("no socket found beneath a TLS connection over TCP")
	}
	// Bytes crypto/tls holds, in input (decrypted) and rawInput (a record
	// not decrypted yet), are seen.
	_, _ = cTest.Write([]byte("0123456789")) // one record
	readFull(t, cRelay, make([]byte, 1))
	if !tlsFields.held(cRelay) {
		t.Fatal("9 decrypted bytes waiting in input, held() says none")
	}
	readFull(t, cRelay, make([]byte, 9))
	if tlsFields.held(cRelay) {
		t.Fatal("everything read, held() says bytes are waiting")
	}
	hold := cTest.NetConn().(*holdConn)
	hold.start()
	_, _ = cTest.Write([]byte("0123456789"))
	_, _ = cTest.Write([]byte("abcdef"))
	hold.flush(t) // two records in one TCP segment
	readFull(t, cRelay, make([]byte, 10))
	if !tlsFields.held(cRelay) {
		t.Fatal("a second record waiting in rawInput, held() says none")
	}
	readFull(t, cRelay, make([]byte, 6))
	if tlsFields.held(cRelay) {
		t.Fatal("everything read, held() says bytes are waiting")
	}
	// TLS over something that is not a kernel socket cannot park.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv, cli := tls.Server(a, serverTLS()), tls.Client(b, clientTLS())
	handshakeBoth(t, srv, cli)
	if tlsSocket(srv) != nil {
		t.Fatal("a socket found beneath TLS over net.Pipe")
	}
}

// TestIdleTLSRelayParks: an idle relay whose legs are both TLS (wss to
// the client and to the backend) parks both legs, before the first frame
// and after lingering, holds no goroutine and none of crypto/tls's input
// buffers, and relays frames sent later byte for byte both ways.
func TestIdleTLSRelayParks(t *testing.T) {
	if thePoller() == nil {
		t.Skip("no poller on this platform")
	}
	shortLinger(t, 20*time.Millisecond)
	pairListener() // its accepting goroutine is there for good
	base := runtime.NumGoroutine()
	h, _ := startTLS(t, quickConfig())
	base += 3 // the two peers' readers and the one waiting for Run
	for _, l := range h.session.legs {
		if l.rd.tlsc == nil || l.rd.sock == nil {
			t.Fatalf("%v leg: TLS parking is off", l.side)
		}
	}
	waitBothParked(t, h, 2*time.Second) // no frame yet: parked at once
	for i := 0; i < 3; i++ {
		time.Sleep(30 * time.Millisecond)
		f := ws.MaskFrame(ws.NewTextFrame([]byte("hello " + itoa(i))))
		h.client.send(f)
		sameFrame(t, h.backend.next(2*time.Second), f)
		b := ws.NewBinaryFrame(payloadOf(100000 + i))
		go h.backend.send(b)
		sameFrame(t, h.client.next(2*time.Second), b)
		waitBothParked(t, h, 2*time.Second)
		waitGoroutines(t, base, 2*time.Second)
		for _, l := range h.session.legs {
			if n := parkedTLSKept(t, l); n != 0 {
				t.Fatalf("%v leg parked with %d bytes of crypto/tls input buffers kept", l.side, n)
			}
		}
	}
	h.client.send(closeFrame(1000, ""))
	h.backend.expectClose(1000, 2*time.Second)
	h.backend.send(closeFrame(1000, ""))
	if r := h.wait(t, 2*time.Second); r.ClosedBy != "client" {
		t.Fatalf("result %+v", r)
	}
}

// parkedTLSKept returns the capacity of the input buffers (rawInput, hand
// and input's slice) that l's tls.Conn keeps while l is parked. It reads
// them under the park lock, which a wake-up takes before any Read (a TLS
// 1.3 session ticket can wake a client leg after it parked).
func parkedTLSKept(t *testing.T, l *leg) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		l.park.mu.Lock()
		if l.park.state == pumpParked {
			v := reflect.ValueOf(l.rd.tlsc).Elem()
			n := v.FieldByName("rawInput").FieldByName("buf").Cap() +
				v.FieldByName("hand").FieldByName("buf").Cap() +
				v.FieldByName("input").FieldByName("s").Cap()
			l.park.mu.Unlock()
			return n
		}
		l.park.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%v leg not parked", l.side)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestTLSBytesHeldByCryptoTLS: frames that crypto/tls has already pulled
// off the socket (two frames in one record; two records in one TCP
// segment) are relayed at once, although the socket is empty. Legs park
// without lingering here, so a leg parked with bytes in crypto/tls would
// never see them.
func TestTLSBytesHeldByCryptoTLS(t *testing.T) {
	if thePoller() == nil {
		t.Skip("no poller on this platform")
	}
	lingering.Add(lingerCap) // legs park at once
	defer lingering.Add(-lingerCap)
	h, hold := startTLS(t, quickConfig())
	for i := 0; i < 4; i++ { // the first round before any frame was relayed
		waitBothParked(t, h, 2*time.Second)
		f1 := ws.MaskFrame(ws.NewTextFrame([]byte("one record, frame 1." + itoa(i))))
		f2 := ws.MaskFrame(ws.NewBinaryFrame(payloadOf(30 + i)))
		h.client.writeRaw(append(mustCompile(t, f1), mustCompile(t, f2)...))
		sameFrame(t, h.backend.next(time.Second), f1)
		sameFrame(t, h.backend.next(time.Second), f2)

		waitBothParked(t, h, 2*time.Second)
		g1 := ws.MaskFrame(ws.NewTextFrame([]byte("record 1." + itoa(i))))
		g2 := ws.MaskFrame(ws.NewTextFrame([]byte("record 2." + itoa(i))))
		g3 := ws.MaskFrame(ws.NewBinaryFrame(payloadOf(200 + i)))
		hold.start()
		h.client.send(g1)
		h.client.send(g2)
		h.client.send(g3)
		hold.flush(t) // three records, one TCP write
		for _, g := range []ws.Frame{g1, g2, g3} {
			sameFrame(t, h.backend.next(time.Second), g)
		}
	}
}

// TestTLSCloseNotifyBehindData: a client's close_notify that came with
// its last frame, TCP left open, still ends the client leg at once: the
// end of stream is with crypto/tls (TLS 1.3: the alert's record waits in
// rawInput; TLS 1.2: Read returned the data and io.EOF together), not in
// the socket, so the leg must not park on it.
func TestTLSCloseNotifyBehindData(t *testing.T) {
	if thePoller() == nil {
		t.Skip("no poller on this platform")
	}
	lingering.Add(lingerCap) // legs park at once
	defer lingering.Add(-lingerCap)
	for _, vers := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		h, hold := startTLSVersion(t, quickConfig(), vers)
		waitBothParked(t, h, 2*time.Second)
		f := ws.MaskFrame(ws.NewTextFrame([]byte("last words")))
		hold.start()
		h.client.send(f)
		if err := h.client.conn.(*tls.Conn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		hold.flush(t) // the frame's record and the alert in one TCP write
		sameFrame(t, h.backend.next(time.Second), f)
		h.backend.expectClose(CodeGoingAway, time.Second)
		h.backend.send(closeFrame(CodeGoingAway, ""))
		if r := h.wait(t, 2*time.Second); r.ClosedBy != "client" {
			t.Fatalf("TLS %x: result %+v", vers, r)
		}
	}
}

// TestTLSParkWakeChurn: many exchanges of assorted sizes, both ways at
// once, over TLS legs that linger only briefly, so they park and wake
// again and again; every frame arrives whole and in order.
func TestTLSParkWakeChurn(t *testing.T) {
	shortLinger(t, 2*time.Millisecond)
	h, hold := startTLS(t, quickConfig())
	parked := parks.Load()
	rnd := rand.New(rand.NewSource(1))
	size := func() int {
		switch rnd.Intn(4) {
		case 0:
			return rnd.Intn(126)
		case 1:
			return rnd.Intn(2000)
		case 2:
			return rnd.Intn(40000)
		}
		return 0
	}
	for i := 0; i < 150; i++ {
		// The backend's frame goes out while the client's go in: the
		// relay writes to the client's TLS connection while the client
		// leg reads, checks crypto/tls's buffers and parks.
		b := ws.NewBinaryFrame(payloadOf(size() + 2*i))
		go h.backend.send(b)
		var fs []ws.Frame
		coalesce := i%5 == 0
		if coalesce {
			hold.start()
		}
		for k := 0; k < 1+rnd.Intn(3); k++ {
			f := ws.MaskFrame(ws.NewBinaryFrame(payloadOf(size() + i)))
			fs = append(fs, f)
			h.client.send(f)
		}
		if coalesce {
			hold.flush(t)
		}
		for _, f := range fs {
			sameFrame(t, h.backend.next(5*time.Second), f)
		}
		sameFrame(t, h.client.next(5*time.Second), b)
		if i%2 == 0 {
			time.Sleep(time.Duration(3+rnd.Intn(5)) * time.Millisecond)
		}
	}
	waitBothParked(t, h, 2*time.Second)
	if n := parks.Load() - parked; n < 30 {
		t.Errorf("legs parked %d times, want many", n)
	}
	t.Logf("legs parked %d times", parks.Load()-parked)
}

// TestParkedTLSLegsEnd: a parked TLS relay ends when a peer goes away,
// and when it is shut down and nobody answers (the close timeout then
// closes the parked legs' TLS connections).
func TestParkedTLSLegsEnd(t *testing.T) {
	if thePoller() == nil {
		t.Skip("no poller on this platform")
	}
	h, _ := startTLS(t, quickConfig())
	waitBothParked(t, h, 2*time.Second)
	h.backend.conn.Close()
	h.client.expectClose(CodeBadGateway, 2*time.Second)
	h.client.conn.Close()
	if r := h.wait(t, 3*time.Second); r.ClosedBy != "backend" {
		t.Fatalf("result %+v", r)
	}
	// This time after a frame each way: the legs linger before parking.
	shortLinger(t, 20*time.Millisecond)
	h2, _ := startTLS(t, quickConfig())
	f := ws.MaskFrame(ws.NewTextFrame([]byte("up")))
	h2.client.send(f)
	sameFrame(t, h2.backend.next(2*time.Second), f)
	b := ws.NewTextFrame([]byte("down"))
	h2.backend.send(b)
	sameFrame(t, h2.client.next(2*time.Second), b)
	waitBothParked(t, h2, 2*time.Second)
	h2.session.Shutdown(CodeGoingAway, "bye")
	h2.client.expectClose(CodeGoingAway, 2*time.Second)
	h2.backend.expectClose(CodeGoingAway, 2*time.Second)
	waitBothParked(t, h2, 2*time.Second)
	if r := h2.wait(t, 5*time.Second); r.Cause != "shutdown" {
		t.Fatalf("result %+v", r)
	}
	h2.client.expectEnd(time.Second)
	h2.backend.expectEnd(time.Second)
}
