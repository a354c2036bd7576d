package relaytest

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Handler runs one backend connection after its upgrade request was read.
// The connection is closed when it returns.
type Handler func(c *BackendConn)

// Backend is a raw TCP WebSocket backend: it reads the upgrade request
// and hands the connection to the handler registered for its path, which
// then answers whatever it likes (a valid 101, garbage, nothing).
type Backend struct {
	Addr string

	t      testing.TB
	ln     net.Listener
	mu     sync.Mutex
	routes map[string]Handler
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// BackendConn is one connection to the backend.
type BackendConn struct {
	Conn net.Conn
	R    *bufio.Reader
	Req  *http.Request
	wmu  sync.Mutex
}

// NewBackend starts a backend on 127.0.0.1 for the life of the test.
func NewBackend(t testing.TB) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("backend listen: %v", err)
	}
	b := &Backend{Addr: ln.Addr().String(), t: t, ln: ln, routes: make(map[string]Handler), conns: make(map[net.Conn]struct{})}
	go b.accept()
	t.Cleanup(b.Close)
	return b
}

// Handle routes upgrade requests for path (exact, or a prefix when path
// ends with "/") to h.
func (b *Backend) Handle(path string, h Handler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.routes[path] = h
}

func (b *Backend) route(path string) Handler {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, ok := b.routes[path]; ok {
		return h
	}
	best := ""
	for p := range b.routes {
		if strings.HasSuffix(p, "/") && strings.HasPrefix(path, p) && len(p) > len(best) {
			best = p
		}
	}
	return b.routes[best]
}

func (b *Backend) accept() {
	for {
		conn, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			conn.Close()
			return
		}
		b.conns[conn] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		go b.serve(conn)
	}
}

func (b *Backend) serve(conn net.Conn) {
	defer b.wg.Done()
	defer func() {
		conn.Close()
		b.mu.Lock()
		delete(b.conns, conn)
		b.mu.Unlock()
	}()
	br := bufio.NewReaderSize(conn, 64<<10)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	req, err := http.ReadRequest(br)
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		return
	}
	h := b.route(req.URL.Path)
	if h == nil {
		fmt.Fprintf(conn, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	h(&BackendConn{Conn: conn, R: br, Req: req})
}

// Close stops the backend, closes its connections and waits (10 s at
// most) for the handlers to return.
func (b *Backend) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.ln.Close()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.t.Errorf("backend handlers still running 10s after the backend closed")
	}
}

// Accept answers the upgrade with a valid 101.
func (c *BackendConn) Accept() error {
	return c.Answer(SwitchingProtocols(AcceptFor(c.Req.Header.Get("Sec-WebSocket-Key"))))
}

// SwitchingProtocols returns a 101 answer carrying accept.
func SwitchingProtocols(accept string) string {
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + accept + "\r\n\r\n"
}

// Answer writes raw bytes as the answer.
func (c *BackendConn) Answer(raw string) error { return c.Write([]byte(raw)) }

// Write sends raw bytes whole.
func (c *BackendConn) Write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Conn.Write(p)
	return err
}

// WriteFrame sends f as it is.
func (c *BackendConn) WriteFrame(f Frame) error { return c.Write(f.Bytes()) }

// Send sends one unmasked frame.
func (c *BackendConn) Send(fin bool, op byte, payload []byte) error {
	return c.WriteFrame(ServerFrame(fin, op, payload))
}

// ReadFrame reads the next frame, waiting at most d.
func (c *BackendConn) ReadFrame(d time.Duration) (Frame, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
	return ReadFrame(c.R)
}

// ReadToClose reads until the close frame, answering pings; see the
// function ReadToClose.
func (c *BackendConn) ReadToClose(d time.Duration) Ending {
	return ReadToClose(c.R, c.Conn, d, func(p Frame) error { return c.Send(true, OpPong, p.Payload) })
}

// Reset closes the connection with a TCP RST.
func (c *BackendConn) Reset() { reset(c.Conn) }

// RemoteAddr is the relay's end of the connection.
func (c *BackendConn) RemoteAddr() string { return c.Conn.RemoteAddr().String() }
