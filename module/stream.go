package wsrelay

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/websocket-relay/websocket_relay/module/engine"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// relayStream relays a WebSocket that the client opened on an HTTP/2 or
// HTTP/3 stream (extended CONNECT, RFC 8441 and RFC 9220) and whose
// backend answered the HTTP/1.1 upgrade with d: the client gets 200 with
// the backend's WebSocket headers (no Sec-WebSocket-Accept: the stream
// has no key), then the frames, unchanged (masked, as over HTTP/1.1),
// flow on the stream's two directions. A stream cannot be taken from
// the server as a connection can, so ServeHTTP stays until the relay
// ends. The stream is written beneath Caddy's response wrappers (as a
// hijack takes the connection): an encoder must not touch the frames.
func (h *Handler) relayStream(w http.ResponseWriter, r *http.Request, d *dialed, u *pendingUpgrade, held *lease) error {
	inner := innermost(w)
	hdr := d.resp.Header.Clone()
	upgrade.RemoveHopHeaders(hdr)
	hdr.Del("Sec-WebSocket-Accept")
	for k, v := range hdr {
		inner.Header()[k] = v
	}
	inner.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(inner)
	if err := rc.Flush(); err != nil {
		d.abandon()
		held.release()
		if c := h.logger.Check(zapcore.DebugLevel, "client went away during the upgrade"); c != nil {
			c.Write(zap.String("remote_addr", r.RemoteAddr), zap.String("upstream", d.upstream.Raw), zap.Error(err))
		}
		return nil
	}
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
// flushed, and deadlines through the response controller. Close ends
// both directions: a blocked read returns, and so does a write under
// way (its deadline passes, which resets the stream); with no write
// under way, the stream ends cleanly once ServeHTTP returns. The engine
// is done with it before ServeHTTP returns, after which w and the body
// are not to be touched.
type streamConn struct {
	body          io.ReadCloser
	w             http.ResponseWriter
	rc            *http.ResponseController
	local, remote net.Addr
	writing       atomic.Bool
	closeOnce     sync.Once
}

func newStreamConn(r *http.Request, w http.ResponseWriter, rc *http.ResponseController) *streamConn {
	c := &streamConn{body: r.Body, w: w, rc: rc, remote: streamAddr{r.Proto, r.RemoteAddr}}
	c.local, _ = r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if c.local == nil {
		c.local = streamAddr{r.Proto, ""}
	}
	return c
}

func (c *streamConn) Read(p []byte) (int, error) { return c.body.Read(p) }

func (c *streamConn) Write(p []byte) (int, error) {
	c.writing.Store(true)
	defer c.writing.Store(false)
	n, err := c.w.Write(p)
	if err == nil {
		err = c.rc.Flush()
	}
	return n, err
}

func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.body.Close()
		if c.writing.Load() {
			_ = c.rc.SetWriteDeadline(aLongTimeAgo)
		}
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

func (c *streamConn) SetDeadline(t time.Time) error {
	if err := c.rc.SetReadDeadline(t); err != nil {
		return err
	}
	return c.rc.SetWriteDeadline(t)
}

func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.rc.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.rc.SetWriteDeadline(t) }

// streamAddr is a stream's peer address as the request gives it.
type streamAddr struct{ network, addr string }

func (a streamAddr) Network() string { return a.network }
func (a streamAddr) String() string  { return a.addr }
