package relaycmd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// echoChunk is the largest frame the echo backend writes: a longer message is
// echoed as several fragments, so memory stays bounded whatever the client
// sends (RFC 6455 5.4 lets a message be re-fragmented).
const echoChunk = 32 << 10

// echoCloseWait bounds how long the echo backend waits for the client's
// answer to a close frame it started, before it closes the TCP connection.
const echoCloseWait = 2 * time.Second

// EchoServer is a WebSocket server that sends every message back to its
// sender, with the same type and payload. It answers pings with pongs and a
// close frame with the same code, as RFC 6455 5.5 asks, and closes with 1002
// on a protocol error and 1007 on invalid UTF-8 in a text message. It is the
// backend of the command's demo mode.
type EchoServer struct {
	ln  net.Listener
	srv *http.Server

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// StartEcho starts an echo backend listening on addr ("127.0.0.1:0" picks a
// free loopback port). Requests that are not WebSocket upgrades get 400 with
// a one-line reason.
func StartEcho(addr string) (*EchoServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("echo backend: listening on %s: %w", addr, err)
	}
	e := &EchoServer{ln: ln, conns: make(map[net.Conn]struct{})}
	e.srv = &http.Server{
		Handler:           http.HandlerFunc(e.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

// Addr returns the host:port the echo backend listens on.
func (e *EchoServer) Addr() string { return e.ln.Addr().String() }

// Close stops accepting, closes every open WebSocket connection and waits
// for their goroutines to end.
func (e *EchoServer) Close() error {
	err := e.srv.Close()
	e.mu.Lock()
	e.closed = true
	for c := range e.conns {
		_ = c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
	return err
}

// serveHTTP upgrades the request and echoes until the connection ends.
func (e *EchoServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	conn, rw, _, err := ws.HTTPUpgrader{}.Upgrade(r, w)
	if err != nil {
		// The upgrader has already written the error response.
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	if !e.track(conn) {
		_ = conn.Close()
		return
	}
	defer e.untrack(conn)
	echo(conn, rw.Reader)
}

func (e *EchoServer) track(c net.Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.conns[c] = struct{}{}
	e.wg.Add(1)
	return true
}

func (e *EchoServer) untrack(c net.Conn) {
	e.mu.Lock()
	delete(e.conns, c)
	e.mu.Unlock()
	_ = c.Close()
	e.wg.Done()
}

// echoConn is one server-side WebSocket connection of the echo backend. One
// goroutine reads and writes, so writes never interleave.
type echoConn struct {
	conn net.Conn
	rd   *wsutil.Reader
	bw   *bufio.Writer
	buf  []byte
	ctl  [125]byte // control frame payload (RFC 6455 5.5: at most 125 bytes)

	// lastHeader is the header of the last frame NextFrame read.
	lastHeader ws.Header
}

// closePayloadError is a close frame whose code or reason is invalid
// (RFC 6455 7.4.1, 5.5.1).
type closePayloadError struct{ ws.ProtocolError }

// echo runs the echo loop on conn, whose handshake is done; br holds any
// bytes read past the handshake.
func echo(conn net.Conn, br *bufio.Reader) {
	c := &echoConn{conn: conn, bw: bufio.NewWriterSize(conn, 4096), buf: make([]byte, echoChunk)}
	c.rd = &wsutil.Reader{
		Source:    br,
		State:     ws.StateServerSide,
		CheckUTF8: true,
		OnIntermediate: func(h ws.Header, r io.Reader) error {
			return c.control(h, r)
		},
	}
	err := c.loop()
	var closed wsutil.ClosedError
	var badClose closePayloadError
	switch {
	case errors.As(err, &closed):
		// Close handshake answered: the server closes TCP first (RFC 6455 7.1.1).
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		c.closeWith(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in text message", c.rd.Discard)
	case errors.As(err, &badClose):
		// The close frame's payload has been read whole.
		c.closeWith(ws.StatusProtocolError, err.Error(), nil)
	case isProtocolError(err):
		// A header check failed: the frame's payload is still unread.
		c.closeWith(ws.StatusProtocolError, err.Error(), func() error {
			_, err := io.CopyN(io.Discard, c.rd.Source, c.lastHeader.Length)
			return err
		})
	}
}

// loop echoes messages until the connection ends, and returns why.
func (c *echoConn) loop() error {
	for {
		hdr, err := c.rd.NextFrame()
		c.lastHeader = hdr
		if err != nil {
			return err
		}
		if hdr.OpCode.IsControl() {
			if err := c.control(hdr, c.rd); err != nil {
				return err
			}
			continue
		}
		if err := c.echoMessage(hdr.OpCode); err != nil {
			return err
		}
	}
}

// echoMessage streams the current message back in frames of at most
// echoChunk bytes, the first with op and the rest as continuations.
func (c *echoConn) echoMessage(op ws.OpCode) error {
	n := 0
	for {
		m, err := c.rd.Read(c.buf[n:])
		n += m
		last := errors.Is(err, io.EOF)
		if err != nil && !last {
			return err
		}
		if last || n == len(c.buf) {
			if err := c.writeFrame(ws.Header{Fin: last, OpCode: op, Length: int64(n)}, c.buf[:n]); err != nil {
				return err
			}
			op, n = ws.OpContinuation, 0
		}
		if last {
			return nil
		}
	}
}

// control answers one control frame whose payload r yields unmasked: a ping
// with a pong carrying the same payload, a close with a close carrying the
// same code and reason (then wsutil.ClosedError); a pong is dropped.
func (c *echoConn) control(h ws.Header, r io.Reader) error {
	p := c.ctl[:h.Length] // CheckHeader has bounded control frames to 125 bytes
	if _, err := io.ReadFull(r, p); err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		return c.writeFrame(ws.Header{Fin: true, OpCode: ws.OpPong, Length: h.Length}, p)
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p)
		if len(p) > 0 {
			if err := ws.CheckCloseFrameData(code, reason); err != nil {
				var pe ws.ProtocolError
				errors.As(err, &pe)
				return closePayloadError{pe}
			}
		}
		// An empty close is answered with an empty one, otherwise the
		// code and reason are echoed.
		if err := c.writeFrame(ws.Header{Fin: true, OpCode: ws.OpClose, Length: h.Length}, p); err != nil {
			return err
		}
		return wsutil.ClosedError{Code: code, Reason: reason}
	}
	return nil
}

// writeFrame writes one whole frame and flushes it.
func (c *echoConn) writeFrame(h ws.Header, payload []byte) error {
	if err := ws.WriteHeader(c.bw, h); err != nil {
		return err
	}
	if _, err := c.bw.Write(payload); err != nil {
		return err
	}
	return c.bw.Flush()
}

// closeWith starts the close handshake with code and reason, then waits up to
// echoCloseWait for the client's close frame. skip, if not nil, first reads
// past the rest of the frame or message that caused the close.
func (c *echoConn) closeWith(code ws.StatusCode, reason string, skip func() error) {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	_ = c.conn.SetDeadline(time.Now().Add(echoCloseWait))
	body := ws.NewCloseFrameBody(code, reason)
	if err := c.writeFrame(ws.Header{Fin: true, OpCode: ws.OpClose, Length: int64(len(body))}, body); err != nil {
		return
	}
	if skip != nil {
		if err := skip(); err != nil {
			return
		}
	}
	// The reader may be in a broken state; read raw frames from here on.
	for {
		h, err := ws.ReadHeader(c.rd.Source)
		if err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, c.rd.Source, h.Length); err != nil || h.OpCode == ws.OpClose {
			return
		}
	}
}

func isProtocolError(err error) bool {
	var pe ws.ProtocolError
	return errors.As(err, &pe)
}
