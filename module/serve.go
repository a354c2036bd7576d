package wsrelay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gobwas/ws"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
	"github.com/websocket-relay/websocket_relay/module/engine"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// ServeHTTP relays a WebSocket upgrade to a backend and hands every other
// request to next. Before the 101, failures are HTTP statuses with a
// one-line reason; after it, close codes and one log line.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// An HTTP/2 or HTTP/3 stream (extended CONNECT) is relayed as a
	// stream; its backend gets an HTTP/1.1 upgrade all the same.
	stream := upgrade.IsExtendedConnect(r)
	if !stream && !upgrade.IsUpgrade(r) {
		return next.ServeHTTP(w, r)
	}
	check := upgrade.CheckClientHandshake
	if stream {
		check = upgrade.CheckExtendedConnect
	}
	if status, reason := check(r); status != 0 {
		if status == http.StatusUpgradeRequired {
			// In RFC 6455's spelling, as the relay's other WebSocket
			// fields (upgrade.UseRFCNames).
			w.Header()["Sec-WebSocket-Version"] = []string{"13"}
		}
		handshakeFailures.WithLabelValues("bad_request").Inc()
		return h.refuse(w, r, status, reason)
	}
	up1 := r // the request the backend's upgrade is made from
	if stream {
		up1 = upgrade.AsUpgrade(r, upgrade.NewKey())
		defer watchExit()() // this handler holds a server's shutdown
	}
	// Counted from here until it is a relay (add) or is not (abort): an
	// exit waits for it, as it waits for relays.
	u := h.live.begin()
	defer h.live.abort(u) // a no-op once it became a relay
	d, held, err := h.connect(r, up1, stream)
	var failed *errConnect
	switch {
	case errors.As(err, &failed) && failed.full:
		handshakeFailures.WithLabelValues("full").Inc()
		h.logger.Warn("every upstream at its unhealthy_request_count", zap.String("remote_addr", r.RemoteAddr), zap.Error(err))
		return h.refuse(w, r, http.StatusServiceUnavailable, "websocket_relay: every upstream is at its connection limit")
	case errors.As(err, &failed) && failed.handshake:
		handshakeFailures.WithLabelValues("handshake").Inc()
		if failed.tries > 1 { // its tries' failures were debug lines
			h.logger.Warn("backend handshake failed on every try", zap.String("remote_addr", r.RemoteAddr), zap.Error(err))
		}
		return h.refuse(w, r, http.StatusBadGateway, "websocket_relay: backend handshake failed")
	case errors.As(err, &failed):
		handshakeFailures.WithLabelValues("dial").Inc()
		h.logger.Warn("no upstream reachable", zap.String("remote_addr", r.RemoteAddr), zap.Error(err))
		return h.refuse(w, r, http.StatusBadGateway, "websocket_relay: no upstream reachable")
	case err != nil:
		h.clientGone(w, r, "backend dial or handshake", err)
		return nil
	}
	conn := d.conn
	relayed := false // then the relay releases held
	defer func() {
		if !relayed {
			held.release()
		}
	}()
	d.cookie = h.pool.stickyCookie(r, held.idx)
	if d.resp.StatusCode != http.StatusSwitchingProtocols {
		// An answer to pass on, never a relay: an exit need not wait
		// for a client that reads it slowly.
		h.live.abort(u)
		defer conn.Close()
		handshakeFailures.WithLabelValues("rejected").Inc()
		h.passAnswer(w, r, d)
		return nil
	}
	relayed = true
	if stream {
		return h.relayStream(w, r, d, u, held)
	}
	return h.relay(w, r, d, u, held)
}

// clientGone answers an upgrade whose client went away during the
// backend's dial or handshake (stage) with 499, as reverse_proxy does, so
// that the access log says so (and a client that half-closed and still
// reads gets no empty 200).
func (h *Handler) clientGone(w http.ResponseWriter, r *http.Request, stage string, err error) {
	handshakeFailures.WithLabelValues("client_gone").Inc()
	if c := h.logger.Check(zapcore.DebugLevel, "client went away during the "+stage); c != nil {
		c.Write(zap.String("remote_addr", r.RemoteAddr), zap.Error(err))
	}
	w.WriteHeader(499)
}

// refuse answers a failed upgrade with status and a one-line reason, or,
// when the server has error routes (handle_errors), returns the status
// as a handler error for them to answer, as reverse_proxy's errors go.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, reason string) error {
	if c := h.logger.Check(zapcore.DebugLevel, "upgrade refused"); c != nil {
		c.Write(zap.String("remote_addr", r.RemoteAddr), zap.Int("status", status), zap.String("reason", reason))
	}
	if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv.Errors != nil && len(srv.Errors.Routes) > 0 {
		// The server has handle_errors: it answers, as it answers
		// reverse_proxy's errors ({err.status_code}, {err.message}).
		return caddyhttp.Error(status, errors.New(reason))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, reason)
	return nil
}

// passAnswer copies a backend's non-101 answer (403, 404, ...) to the
// client unchanged, hop-by-hop headers aside. Each read of its body has
// HandshakeTimeout. An answer that cannot be copied whole (the backend
// broke off or stalled, or the client went away) is cut off: the
// client's connection is aborted, so it cannot take what it got for the
// whole answer, and no error page is written after it.
func (h *Handler) passAnswer(w http.ResponseWriter, r *http.Request, d *dialed) {
	defer func() {
		d.resp.Body.Close()
		putAnswerReader(d.br) // the body was read through it
		d.br = nil
	}()
	d.answerHeader(w)
	w.WriteHeader(d.resp.StatusCode)
	body := &deadlineReader{r: d.resp.Body, conn: d.conn, timeout: time.Duration(h.HandshakeTimeout)}
	cw := &clientWriter{w: w}
	if _, err := io.Copy(cw, body); err != nil {
		lvl := zapcore.WarnLevel
		if cw.err != nil {
			lvl = zapcore.DebugLevel // the client went away: nothing to act on
		}
		if c := h.logger.Check(lvl, "backend answer cut off"); c != nil {
			c.Write(zap.String("remote_addr", r.RemoteAddr), zap.String("upstream", d.upstream.Raw),
				zap.Int("status", d.resp.StatusCode), zap.Error(err))
		}
		// What came goes out as it came; then net/http closes the
		// connection, quietly. The backend's goes first: closing the
		// body would read on until its deadline.
		d.conn.Close()
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
}

// deadlineReader reads r, each read within timeout on conn.
type deadlineReader struct {
	r       io.Reader
	conn    net.Conn
	timeout time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	_ = d.conn.SetReadDeadline(now().Add(d.timeout))
	return d.r.Read(p)
}

// clientWriter writes to w and keeps the first write error, telling a
// client that went away from a backend that failed.
type clientWriter struct {
	w   io.Writer
	err error
}

func (c *clientWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// relay sends the backend's 101 to the client, takes over the client's
// connection and starts the engine on both legs, as the relay upgrade u
// of h.live became; it returns at once. It releases held when the
// connection ends, or at once if it cannot be relayed.
func (h *Handler) relay(w http.ResponseWriter, r *http.Request, d *dialed, u *pendingUpgrade, held *lease) error {
	d.answerHeader(w)
	w.Header().Set("Upgrade", "websocket")
	w.Header().Set("Connection", "Upgrade")
	upgrade.UseRFCNames(w.Header()) // as reverse_proxy answers
	w.WriteHeader(http.StatusSwitchingProtocols)
	clientConn, brw, err := hijackInnermost(w)
	if err != nil {
		d.abandon()
		held.release()
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("hijacking client connection: %w", err))
	}
	if err := brw.Flush(); err != nil {
		clientConn.Close()
		h.lostInUpgrade(r, d, held, err)
		return nil
	}
	h.start(engine.Leg{Conn: clientConn, Prefix: buffered(brw.Reader)}, r, d, u, held, nil)
	// Return now: the handler chain's goroutine and the request do not stay
	// parked for the life of the connection; the session owns both sockets.
	return nil
}

// lostInUpgrade ends an upgrade whose client went away as the backend's
// answer was passed on (err): the backend gets 1001, and the upstream
// no longer counts the connection.
func (h *Handler) lostInUpgrade(r *http.Request, d *dialed, held *lease, err error) {
	d.abandon()
	held.release()
	if c := h.logger.Check(zapcore.DebugLevel, "client went away during the upgrade"); c != nil {
		c.Write(zap.String("remote_addr", r.RemoteAddr), zap.String("upstream", d.upstream.Raw), zap.Error(err))
	}
}

// start relays between client and d's backend as the relay upgrade u of
// h.live became, and returns at once; when the relay ends, held is
// released and then ended, if any, is called.
func (h *Handler) start(client engine.Leg, r *http.Request, d *dialed, u *pendingUpgrade, held *lease, ended func()) {
	backend := engine.Leg{Conn: d.conn, Prefix: d.takeBuffered()}
	s := engine.New(client, backend, h.engineConfig(upgrade.AllowedRSV(d.resp.Header.Values("Sec-WebSocket-Extensions"))))
	if ok, code, reason := h.live.add(u, s); !ok {
		// This configuration is already shutting down (1012 on a
		// reload, 1001 on exit).
		s.Shutdown(code, reason)
	}
	activeConnections.Inc()
	traffic.started(s)
	remote, up := r.RemoteAddr, d.upstream
	s.Start(func(res engine.Result) {
		activeConnections.Dec()
		held.release()
		h.live.remove(s)
		h.logEnd(remote, up, res)
		recordEnd(s, res)
		if ended != nil {
			ended()
		}
	})
}

// hijackInnermost takes the client connection from net/http's own
// response writer, beneath Caddy's wrappers. Caddy's recorder wraps a
// hijacked connection to count bytes for metrics and access logs, which
// it reads when ServeHTTP returns; the relay outlives ServeHTTP, so those
// counters would race with its writes. The bare connection is also a plain
// *net.TCPConn (or *tls.Conn), which lets idle legs park.
func hijackInnermost(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(innermost(w)).Hijack()
}

// buffered copies the bytes a reader already holds.
func buffered(br interface {
	Buffered() int
	Peek(int) ([]byte, error)
}) []byte {
	n := br.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := br.Peek(n)
	return append([]byte(nil), b...)
}

// logEnd writes the one info line that ends every relayed connection.
func (h *Handler) logEnd(remote string, up relayconfig.Upstream, res engine.Result) {
	fields := []zap.Field{
		zap.String("remote_addr", remote),
		zap.String("upstream", up.Raw),
		zap.Duration("duration", res.Duration),
		zap.Int64("client_to_backend_bytes", res.ClientToBackend.Bytes),
		zap.Int64("client_to_backend_frames", res.ClientToBackend.Frames),
		zap.Int64("backend_to_client_bytes", res.BackendToClient.Bytes),
		zap.Int64("backend_to_client_frames", res.BackendToClient.Frames),
		zap.Uint16("close_code", res.CloseCode),
		zap.String("close_reason", res.CloseReason),
		zap.String("closed_by", res.ClosedBy),
		zap.String("cause", res.Cause),
		zap.Int64("pings_sent", res.PingsSent),
		zap.Int64("pongs_received", res.PongsReceived),
	}
	if q := res.ClientQueues; q != nil && (q.Unread >= 0 || q.Unacked >= 0 || q.TLSHeld >= 0) { // a stream has no socket
		fields = append(fields, zap.Int("client_unread_bytes", q.Unread), zap.Int("client_unacked_bytes", q.Unacked),
			zap.Int("client_tls_held_bytes", q.TLSHeld))
	}
	h.logger.Info("connection closed", fields...)
}

// abandon ends a backend connection that answered 101 when its client
// cannot be relayed after all (it went away during the upgrade): the
// backend gets close 1001, as for any client that goes away.
func (d *dialed) abandon() {
	d.takeBuffered()
	_ = d.conn.SetWriteDeadline(now().Add(time.Second))
	body := ws.NewCloseFrameBody(ws.StatusGoingAway, "client went away")
	_ = ws.WriteFrame(d.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(body)))
	d.conn.Close()
}
