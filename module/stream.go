package wsrelay

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/websocket-relay/websocket_relay/module/engine"
)

// relayStream relays a WebSocket that the client opened on an HTTP/2 or
// HTTP/3 stream (extended CONNECT, RFC 8441 and RFC 9220) and whose
// backend answered the HTTP/1.1 upgrade with d: the client gets 200 with
// the backend's WebSocket headers (no Sec-WebSocket-Accept: the stream
// has no key), then the frames, unchanged (masked, as over HTTP/1.1),
// flow on the stream's two directions. A stream cannot be taken from
// the server as a connection can, so ServeHTTP stays until the relay
// ends. The 200 goes through Caddy's response wrappers, as a 101 does;
// the frames go beneath them (as a hijack takes the connection): an
// encoder must not touch the frames.
func (h *Handler) relayStream(w http.ResponseWriter, r *http.Request, d *dialed, u *pendingUpgrade, held *lease) error {
	inner := innermost(w)
	d.answerHeader(w)
	w.Header().Del("Sec-WebSocket-Accept")
	// The status goes through Caddy's wrappers, as an HTTP/1.1 upgrade's
	// 101 does: the site's deferred header operations (`header -Field`,
	// `header >Field`) apply to it as they do to the 101 (and as they do
	// to reverse_proxy's answer on a stream). An encoder writes a
	// CONNECT's 2xx at once; the frames go beneath the wrappers.
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(inner)
	if err := rc.Flush(); err != nil {
		h.lostInUpgrade(r, d, held, err)
		return nil
	}
	// The server's read_body and write timeouts put a timer on each
	// HTTP/2 stream that ends it when it fires; they bound requests,
	// not the relays they became (as a hijack lifts them over HTTP/1.1).
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	ended := make(chan struct{})
	h.start(engine.Leg{Conn: newStreamConn(r, inner, rc)}, r, d, u, held, func() { close(ended) })
	<-ended
	return nil
}

// An HTTP/2 or HTTP/3 stream's handler stays in ServeHTTP for the life
// of its relay, and a server's shutdown waits for its handlers: on exit,
// Caddy's HTTP app waits for them before any Cleanup runs, so Cleanup's
// 1001 would never come. While stream upgrades or relays live, one
// goroutine watches for the exit and sends it at once, as Cleanup's
// exit does (Cleanup then waits as ever). A reload needs no watch: the
// old servers' shutdowns do not hold the reload, and Cleanup's drain
// ends the streams.
var streamExit struct {
	sync.Mutex
	live int
	stop chan struct{}
}

// exitPoll is how often the watch looks for an exit.
const exitPoll = 50 * time.Millisecond

// watchExit counts a stream upgrade under way (or its relay) until the
// returned func is called, and starts the watch for the first one.
func watchExit() (done func()) {
	streamExit.Lock()
	defer streamExit.Unlock()
	streamExit.live++
	if streamExit.live == 1 {
		streamExit.stop = make(chan struct{})
		go exitWatch(streamExit.stop)
	}
	return func() {
		streamExit.Lock()
		defer streamExit.Unlock()
		if streamExit.live--; streamExit.live == 0 {
			close(streamExit.stop)
		}
	}
}

// exitWatch sends every relay the exit's 1001 once Caddy is exiting, or
// returns when stop closes.
func exitWatch(stop chan struct{}) {
	t := time.NewTicker(exitPoll)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if exiting() {
				for _, r := range beginExit(engine.CodeGoingAway, "server shutting down") {
					r.shutdown(engine.CodeGoingAway, "server shutting down")
				}
				return
			}
		}
	}
}

// innermost is the server's own response writer beneath Caddy's wrappers.
func innermost(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// streamConn is an HTTP/2 or HTTP/3 stream as a net.Conn for the engine:
// reads from the request body, writes to the response, each write
// flushed. Deadlines keep net.Conn's meaning: they bound a read or write
// under way, and one that passes between operations does nothing (the
// next operation fails at once). They cannot be handed to the response
// controller as they are: Go's HTTP/2 server resets the stream when a
// write deadline passes, and ends the body for good when a read deadline
// does, whether or not an operation is under way, so an idle relay was
// cut write_timeout after its last write to the client, and the cut was
// not reported as a timeout. So each operation arms its own timer, which
// only when it fires during that operation sets a past deadline through
// the controller (ending the operation, and on HTTP/2 the stream).
// Close ends both directions: a blocked read returns, and so does a
// write under way (as its deadline passing does); no read or write starts
// after it; with no write under way, the stream ends cleanly once
// ServeHTTP returns. The engine is done with it before ServeHTTP
// returns, after which w and the body are not to be touched: the
// controller is only called with an operation under way, or from Close.
type streamConn struct {
	body          io.ReadCloser
	w             http.ResponseWriter
	rc            *http.ResponseController
	local, remote net.Addr

	mu     sync.Mutex
	closed bool
	rd, wr streamOp
	// gone is closed by Close. A write cut by its deadline resets an
	// HTTP/2 stream, which ends the body too: a read that fails after
	// that waits for Close, so that the relay hears of the write's
	// timeout, not of a client gone, as over a socket.
	gone chan struct{}
}

// streamOp is one direction's deadline and the operation under way.
type streamOp struct {
	deadline time.Time
	busy     bool // a read (or write) is under way
	expired  bool // its deadline passed while it was
	cut      bool // a deadline passed during an operation, ever
	timer    *time.Timer
}

func newStreamConn(r *http.Request, w http.ResponseWriter, rc *http.ResponseController) *streamConn {
	body := r.Body
	if ir, _ := caddyhttp.IdleTimeoutsFromContext(r.Context()); ir != nil {
		// Caddy's read_body_idle (1m by default) would cut a client
		// that is silent for longer, and each of its reads installs
		// its own deadline over the relay's (stall_timeout): the relay
		// reads the body beneath it (and beneath the access log's
		// counting reader, or a max_size, which wrap it), and bounds
		// the stream's reads itself, as it does a socket's.
		body = ir.ReadCloser
	}
	c := &streamConn{body: body, w: w, rc: rc, remote: streamAddr{r.Proto, r.RemoteAddr}, gone: make(chan struct{})}
	c.local, _ = r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if c.local == nil {
		c.local = streamAddr{r.Proto, ""}
	}
	return c
}

// errStreamTimeout is a read or write cut by its deadline.
var errStreamTimeout = fmt.Errorf("stream: %w", os.ErrDeadlineExceeded)

// begin starts an operation on op, or says why it cannot start.
func (c *streamConn) begin(op *streamOp, cut func(time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	if !op.deadline.IsZero() {
		d := time.Until(op.deadline)
		if d <= 0 {
			return errStreamTimeout
		}
		if op.timer == nil {
			op.timer = time.AfterFunc(d, func() { c.expire(op, cut) })
		} else {
			op.timer.Reset(d)
		}
	}
	op.busy, op.expired = true, false
	return nil
}

// end ends the operation on op and reports whether its deadline cut it.
func (c *streamConn) end(op *streamOp) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if op.timer != nil {
		op.timer.Stop()
	}
	op.busy = false
	return op.expired
}

// expire cuts the operation under way on op once its deadline passed.
// The lock is held while the controller is called: the operation, which
// the engine waits for before ServeHTTP returns, cannot end meanwhile.
func (c *streamConn) expire(op *streamOp, cut func(time.Time) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !op.busy || op.expired || op.deadline.IsZero() || time.Now().Before(op.deadline) {
		return
	}
	op.expired, op.cut = true, true
	_ = cut(aLongTimeAgo)
}

func (c *streamConn) Read(p []byte) (int, error) {
	if err := c.begin(&c.rd, c.rc.SetReadDeadline); err != nil {
		return 0, err
	}
	n, err := c.body.Read(p)
	if c.end(&c.rd) && err != nil {
		err = errStreamTimeout
	} else if err != nil && c.writeCut() {
		<-c.gone
		err = net.ErrClosed
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) {
	if err := c.begin(&c.wr, c.rc.SetWriteDeadline); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	if err == nil {
		err = c.rc.Flush()
	}
	if c.end(&c.wr) {
		// HTTP/2 says "stream closed", or nothing when the bytes went
		// out just as the deadline reset the stream: the stream is gone
		// either way, and the relay must hear of it (a read that the
		// reset failed waits for the Close that follows).
		err = errStreamTimeout
	}
	return n, err
}

// writeCut reports whether a write's deadline cut the stream.
func (c *streamConn) writeCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wr.cut
}

func (c *streamConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.gone)
	if c.wr.busy {
		_ = c.rc.SetWriteDeadline(aLongTimeAgo)
	}
	c.mu.Unlock()
	return c.body.Close()
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline and SetWriteDeadline take effect from the next read or
// write (the engine sets them between operations).
func (c *streamConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wr.deadline = t
	c.mu.Unlock()
	return nil
}

// streamAddr is a stream's peer address as the request gives it.
type streamAddr struct{ network, addr string }

func (a streamAddr) Network() string { return a.network }
func (a streamAddr) String() string  { return a.addr }
