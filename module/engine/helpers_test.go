package engine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// peer is the test's end of one leg: it writes raw frames and collects
// every frame the relay sends it.
type peer struct {
	t      *testing.T
	conn   net.Conn
	frames chan ws.Frame
	closed chan struct{} // closed when reading ends (EOF or error)
	mask   bool          // frames this peer writes are masked (a client)
	wmu    sync.Mutex
}

func newPeer(t *testing.T, conn net.Conn, mask, reads bool) *peer {
	t.Helper()
	p := &peer{t: t, conn: conn, frames: make(chan ws.Frame, 1024), closed: make(chan struct{}), mask: mask}
	if reads {
		go p.read()
	}
	t.Cleanup(func() { conn.Close() })
	return p
}

func (p *peer) read() {
	defer close(p.closed)
	br := bufio.NewReader(p.conn)
	for {
		f, err := readFrame(br)
		if err != nil {
			return
		}
		p.frames <- f
	}
}

// readFrame reads a whole frame without unmasking it.
func readFrame(br *bufio.Reader) (ws.Frame, error) {
	h, err := ws.ReadHeader(br)
	if err != nil {
		return ws.Frame{}, err
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(br, payload); err != nil {
		return ws.Frame{}, err
	}
	return ws.Frame{Header: h, Payload: payload}, nil
}

// send writes a frame, masking it when the peer is a client.
func (p *peer) send(f ws.Frame) {
	p.t.Helper()
	if p.mask && !f.Header.Masked {
		f = ws.MaskFrame(f)
	}
	p.writeRaw(mustCompile(p.t, f))
}

func (p *peer) writeRaw(b []byte) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = p.conn.Write(b)
}

func mustCompile(t *testing.T, f ws.Frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := ws.WriteFrame(&buf, f); err != nil {
		t.Fatalf("compiling frame: %v", err)
	}
	return buf.Bytes()
}

// next returns the next frame the relay sent this peer.
func (p *peer) next(timeout time.Duration) ws.Frame {
	p.t.Helper()
	select {
	case f := <-p.frames:
		return f
	case <-p.closed:
		select {
		case f := <-p.frames:
			return f
		default:
		}
		p.t.Fatalf("connection ended while waiting for a frame")
	case <-time.After(timeout):
		p.t.Fatalf("no frame within %v", timeout)
	}
	return ws.Frame{}
}

// nextSkipPings returns the next frame that is not a relay ping.
func (p *peer) nextSkipPings(timeout time.Duration) ws.Frame {
	p.t.Helper()
	for {
		f := p.next(timeout)
		if f.Header.OpCode == ws.OpPing && bytes.Equal(f.Payload, pingPayload) {
			continue
		}
		return f
	}
}

// expectClose waits for a close frame with code and returns its reason.
func (p *peer) expectClose(code uint16, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := p.nextSkipPings(time.Until(deadline))
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		if f.Header.Masked {
			f = ws.UnmaskFrame(f)
		}
		if len(f.Payload) < 2 {
			p.t.Fatalf("close frame without code, want %d", code)
		}
		got := binary.BigEndian.Uint16(f.Payload)
		if got != code {
			p.t.Fatalf("close code %d (%q), want %d", got, f.Payload[2:], code)
		}
		return string(f.Payload[2:])
	}
}

// expectEnd waits until the relay closes this peer's connection.
func (p *peer) expectEnd(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.closed:
	case <-time.After(timeout):
		p.t.Fatalf("connection still open after %v", timeout)
	}
}

// harness runs a session between a test client and a test backend.
type harness struct {
	client, backend *peer
	session         *Session
	result          chan Result
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	return startOpts(t, cfg, true)
}

// startOpts is start with a client that reads only when clientReads.
func startOpts(t *testing.T, cfg Config, clientReads bool) *harness {
	t.Helper()
	return startOn(t, cfg, clientReads, net.Pipe)
}

// startTCP is start over loopback TCP: the relay then waits for bytes
// through syscall.RawConn, as it does for real plain-TCP connections.
func startTCP(t *testing.T, cfg Config) *harness {
	t.Helper()
	return startOn(t, cfg, true, func() (net.Conn, net.Conn) { return loopbackPair(t) })
}

// loopTransports is {"loop"} where the engine has event loops (set, with
// waitLoop, by loop_test.go), else empty.
var (
	loopTransports []string
	waitLoop       func(*testing.T, *Session)
)

// startOver is start over "pipe" (net.Pipe), "tcp" (loopback) or
// "loop" (loopback, the event loops on, the relay on one when it returns).
func startOver(t *testing.T, transport string, cfg Config) *harness {
	t.Helper()
	switch transport {
	case "tcp":
		return startTCP(t, cfg)
	case "loop":
		cfg.Loops = true
		h := startTCP(t, cfg)
		waitLoop(t, h.session)
		return h
	}
	return start(t, cfg)
}

// waitGoroutines waits until the process runs at most base goroutines,
// and fails with every goroutine's stack if it still runs more after
// timeout.
func waitGoroutines(t *testing.T, base int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines while idle, want %d (no pump goroutine):\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// loopbackPair returns both ends of a loopback TCP connection.
func loopbackPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	return loopbackPairWith(t, &net.Dialer{})
}

// loopbackPairWith is loopbackPair with the first end dialed by d.
//
// Every pair comes from one listener, shared by the package's tests: a
// listener of its own per pair would take an ephemeral port that the
// accepted end's TIME_WAIT then holds for a minute, and a fuzz target
// making pairs by the ten thousand ran out of ports ("bind: address
// already in use"). Accepted ends are matched to their dialers by address.
func loopbackPairWith(t testing.TB, d *net.Dialer) (net.Conn, net.Conn) {
	t.Helper()
	c, a, err := dialPair(d)
	if err != nil {
		t.Fatal(err)
	}
	return c, a
}

// dialPair is loopbackPairWith for goroutines other than the test's: it
// reports errors instead of failing the test.
func dialPair(d *net.Dialer) (net.Conn, net.Conn, error) {
	ln, err := pairListener()
	if err != nil {
		return nil, nil, err
	}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	ch := pairAccepted(c.LocalAddr().String())
	defer pairTaken(c.LocalAddr().String())
	select {
	case a := <-ch:
		return c, a, nil
	case <-time.After(5 * time.Second):
		c.Close()
		return nil, nil, errors.New("the shared test listener did not accept a dialed connection in 5 s")
	}
}

// pairs is loopbackPairWith's listener and the ends it accepted, by the
// dialer's address, until their dialer takes them.
var pairs struct {
	once sync.Once
	ln   net.Listener
	err  error
	mu   sync.Mutex
	by   map[string]chan net.Conn
}

// pairListener starts the shared listener and its accepting goroutine
// (which lives as long as the test binary) once.
func pairListener() (net.Listener, error) {
	pairs.once.Do(func() {
		pairs.by = make(map[string]chan net.Conn)
		pairs.ln, pairs.err = net.Listen("tcp", "127.0.0.1:0")
		if pairs.err != nil {
			return
		}
		go func() {
			for {
				c, err := pairs.ln.Accept()
				if err != nil {
					return
				}
				pairAccepted(c.RemoteAddr().String()) <- c
			}
		}()
	})
	return pairs.ln, pairs.err
}

// pairAccepted is the channel for the accepted end of the connection
// dialed from addr, made by whichever of acceptor and dialer comes first.
func pairAccepted(addr string) chan net.Conn {
	pairs.mu.Lock()
	defer pairs.mu.Unlock()
	ch, ok := pairs.by[addr]
	if !ok {
		ch = make(chan net.Conn, 1)
		pairs.by[addr] = ch
	}
	return ch
}

// pairTaken forgets the channel of a pair its dialer has taken.
func pairTaken(addr string) {
	pairs.mu.Lock()
	delete(pairs.by, addr)
	pairs.mu.Unlock()
}

// slowBackendLegs returns the relay's ends of two loopback TCP legs and
// the test's peers on them: a client that reads, and a backend that reads
// nothing until the test runs go backend.read(), behind 16 KiB socket
// buffers, so the relay soon cannot write to it.
func slowBackendLegs(t *testing.T) (client, backend *peer, cRelay, bRelay net.Conn) {
	t.Helper()
	cTest, cRelay := loopbackPair(t)
	bTest, bRelay := loopbackPair(t)
	for _, c := range []net.Conn{bTest, bRelay} {
		c.(*net.TCPConn).SetReadBuffer(16 << 10)
		c.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	return newPeer(t, cTest, true, true), newPeer(t, bTest, false, false), cRelay, bRelay
}

func startOn(t *testing.T, cfg Config, clientReads bool, pair func() (net.Conn, net.Conn)) *harness {
	t.Helper()
	return startPairs(t, cfg, clientReads, pair, pair)
}

// startPairs is startOn with the client's connection from clientPair and
// the backend's from backendPair.
func startPairs(t *testing.T, cfg Config, clientReads bool, clientPair, backendPair func() (net.Conn, net.Conn)) *harness {
	t.Helper()
	cTest, cRelay := clientPair()
	bTest, bRelay := backendPair()
	h := &harness{
		client:  newPeer(t, cTest, true, clientReads),
		backend: newPeer(t, bTest, false, true),
		result:  make(chan Result, 1),
	}
	h.session = New(Leg{Conn: cRelay}, Leg{Conn: bRelay}, cfg)
	go func() { h.result <- h.session.Run() }()
	t.Cleanup(func() {
		cTest.Close()
		bTest.Close()
		select {
		case <-h.result:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after both peers closed")
		}
	})
	return h
}

// wait returns the session's result.
func (h *harness) wait(t *testing.T, timeout time.Duration) Result {
	t.Helper()
	select {
	case r := <-h.result:
		h.result <- r
		return r
	case <-time.After(timeout):
		t.Fatalf("Run did not return within %v", timeout)
	}
	return Result{}
}

func closeFrame(code uint16, reason string) ws.Frame {
	return ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason))
}

func sameFrame(t *testing.T, got, want ws.Frame) {
	t.Helper()
	if got.Header != want.Header {
		t.Fatalf("header %+v, want %+v", got.Header, want.Header)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("payload differs (len %d, want %d)", len(got.Payload), len(want.Payload))
	}
}

func quickConfig() Config {
	return Config{WriteTimeout: 5 * time.Second, CloseTimeout: 2 * time.Second}
}

// closeHandshake has the client close with 1000 and the backend answer,
// each seeing the other's close frame.
func closeHandshake(t *testing.T, client, backend *peer) {
	t.Helper()
	client.send(closeFrame(1000, "bye"))
	backend.expectClose(1000, 2*time.Second)
	backend.send(closeFrame(1000, "bye"))
	client.expectClose(1000, 2*time.Second)
}

// waitResult waits for a relay's result.
func waitResult(t *testing.T, result <-chan Result) Result {
	t.Helper()
	return endsWithin(t, result, 5*time.Second)
}

// endsWithin waits for the relay's result, failing with every goroutine's
// stack (where a deadlock shows) when it does not come.
func endsWithin(t *testing.T, result <-chan Result, d time.Duration) Result {
	t.Helper()
	select {
	case r := <-result:
		return r
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		t.Fatalf("the relay did not end within %v\n%s", d, buf[:runtime.Stack(buf, true)])
	}
	return Result{}
}

// expectSent checks that p gets the frames of sent, whole and in order.
func expectSent(t *testing.T, p *peer, sent []ws.Frame) {
	t.Helper()
	for i, want := range sent {
		got := p.next(5 * time.Second)
		if got.Header != want.Header || string(got.Payload) != string(want.Payload) {
			t.Fatalf("frame %d differs", i)
		}
	}
}
