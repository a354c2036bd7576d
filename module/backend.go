package wsrelay

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// aLongTimeAgo is a deadline in the past: it ends a wait at once.
var aLongTimeAgo = time.Unix(1, 0)

// dialed is a backend connection whose upgrade request was answered.
type dialed struct {
	conn     net.Conn
	upstream relayconfig.Upstream
	resp     *http.Response
	// br holds bytes read past the backend's response headers: the first
	// frames, or the body of a non-101 answer.
	br *bufio.Reader
	// cookie is the cookie policy's, for the client's answer (nil: none).
	cookie *http.Cookie
}

// answerHeader adds the backend's answer's header fields to the client's
// answer w, hop-by-hop fields aside, after the cookie policy's cookie,
// as reverse_proxy answers: it sets its cookie as it picks the upstream,
// then adds the backend's fields to those set before (by the site's
// `header` lines among them), so a browser keeps the backend's cookie of
// the same name. An answer other than 101 carries Via and no Server of
// Caddy's, as reverse_proxy's does.
func (d *dialed) answerHeader(w http.ResponseWriter) {
	out := w.Header()
	if d.cookie != nil {
		out.Add("Set-Cookie", d.cookie.String())
	}
	if d.resp.StatusCode != http.StatusSwitchingProtocols {
		delete(out, "Server")
		out["Via"] = append(out["Via"], strconv.Itoa(d.resp.ProtoMajor)+"."+strconv.Itoa(d.resp.ProtoMinor)+" Caddy")
	}
	hdr := d.resp.Header.Clone()
	upgrade.RemoveHopHeaders(hdr)
	if d.resp.StatusCode == http.StatusSwitchingProtocols {
		// A 101 has no body (RFC 9110 8.6): a backend's Content-Length
		// on it would bound a stream's 200, the frames its body.
		delete(hdr, "Content-Length")
	}
	for k, v := range hdr {
		out[k] = append(out[k], v...)
	}
}

// The buffers of the upgrade handshake are pooled: a connection uses them
// once, for a few hundred bytes, and they were 5 KiB of the 28 KiB of
// garbage each connection's set-up left to the collector.
var (
	requestWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 1024) }}
	answerReaders  = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
)

func putAnswerReader(br *bufio.Reader) {
	br.Reset(nil)
	answerReaders.Put(br)
}

// takeBuffered returns a copy of the bytes read past a 101 answer's
// headers and gives the reader back to the pool.
func (d *dialed) takeBuffered() []byte {
	b := buffered(d.br)
	putAnswerReader(d.br)
	d.br = nil
	return b
}

// errStream2xx is a stream upgrade's 2xx answer without the 101.
var errStream2xx = errors.New("answered a stream's upgrade with a 2xx, not 101")

// errConnect is connect's failure when no upstream could be used.
type errConnect struct {
	// handshake: some upstream was dialed, and its upgrade failed (else
	// no dial succeeded).
	handshake bool
	// full: every upstream was at its unhealthy_request_count.
	full bool
	// tries is how many times every upstream was tried.
	tries int
	err   error
}

func (e *errConnect) Error() string { return e.err.Error() }
func (e *errConnect) Unwrap() error { return e.err }

// connect dials the upstreams in the lb_policy's order for r and makes
// the backend's upgrade, from up1, on the first that answers it: with a
// valid 101, or with a refusal to pass on (for a stream, a 2xx without
// the 101 is a failed upgrade). An upstream whose dial or upgrade fails
// is marked failed, and the next one is tried. The answer's upstream
// counts the connection, from its dial on, until the lease's release.
// When r's context ends (the client went away), connect stops with an
// error and marks no upstream failed: nothing failed for the upstream's
// sake.
func (h *Handler) connect(r, up1 *http.Request, stream bool) (*dialed, *lease, error) {
	ctx := r.Context()
	start := now()
	var errs []error
	handshake := false
	tries := 1
	for ; ; tries++ {
		// The last try's errors say why, and what it failed at.
		errs, handshake = errs[:0], false
		d, held, again := h.tryUpstreams(ctx, r, up1, stream, tries, &errs, &handshake)
		if d != nil {
			return d, held, nil
		}
		if !again || !h.tryAgain(ctx, start, tries) {
			break
		}
	}
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("client went away: %w", errors.Join(append(errs, ctx.Err())...))
	}
	if len(errs) == 0 { // no upstream to try (a policy that gives none)
		errs = append(errs, errors.New("no upstream to try"))
	}
	// Every upstream skipped at its cap: unavailable, not failed.
	full := allAre(errs, errFull)
	err := errors.Join(errs...)
	if tries > 1 {
		err = fmt.Errorf("%d tries over %s, the last: %w", tries, now().Sub(start).Round(time.Millisecond), err)
	}
	return nil, nil, &errConnect{handshake: handshake, full: full, tries: tries, err: err}
}

// tryUpstreams tries each upstream in the policy's order, once: the
// first valid answer is returned, with its lease. Otherwise it adds
// each failure to errs, sets handshake when an upgrade was tried, and
// says whether another try may do better: not when the client went
// away, nor when the answer was the path's own (a stream's 2xx) or the
// request's (an invalid Host from header_up at every upstream).
func (h *Handler) tryUpstreams(ctx context.Context, r, up1 *http.Request, stream bool, try int, errs *[]error, handshake *bool) (*dialed, *lease, bool) {
	for order := h.pool.order(r, now()); len(order) > 0; {
		conn, idx, held, rest, began, err := h.dialNext(ctx, order, errs)
		if err != nil || conn == nil {
			break
		}
		order = rest
		up := h.pool.list[idx]
		d, err := h.handshake(conn, up, up1)
		if err == nil && stream && d.resp.StatusCode/100 == 2 {
			// A 2xx to an extended CONNECT opens the WebSocket (RFC
			// 8441 5, RFC 9220 3): a backend's 200 page passed on
			// would be read as frames. Over HTTP/1.1 it is a refusal;
			// here it cannot be, so it is a failed upgrade.
			putAnswerReader(d.br)
			err = fmt.Errorf("%w: %d", errStream2xx, d.resp.StatusCode)
		}
		if err == nil {
			// Only a valid answer clears a failure: a dial that
			// connects says nothing of the upgrade. A valid answer
			// the passive checks find unhealthy is used all the same.
			if why := h.unhealthyAnswer(d.resp.StatusCode, began); why != "" {
				h.pool.markFailed(idx, now())
				if c := h.logger.Check(zapcore.DebugLevel, "upstream answer counted as a failure"); c != nil {
					c.Write(zap.String("upstream", up.Raw), zap.String("reason", why))
				}
			} else {
				h.pool.markHealthy(idx)
			}
			return d, held, false
		}
		conn.Close()
		held.release()
		if ctx.Err() != nil {
			*errs = append(*errs, err)
			return nil, nil, false
		}
		*handshake = true
		// A warn line on the first try; the tries after it (a backend
		// restarting, tried every lb_try_interval) say it at debug, and
		// the refusal after them at warn.
		level := zapcore.WarnLevel
		if try > 1 {
			level = zapcore.DebugLevel
		}
		if c := h.logger.Check(level, "backend handshake failed"); c != nil {
			c.Write(zap.String("remote_addr", r.RemoteAddr), zap.String("upstream", up.Raw), zap.Int("try", try), zap.Error(err))
		}
		*errs = append(*errs, fmt.Errorf("upgrade at upstream %s: %w", up.Raw, err))
		if errors.Is(err, errStream2xx) {
			// The path's answer (a page where a WebSocket was asked
			// for), not the upstream's health: another would answer
			// the same, and a client must not get them marked.
			return nil, nil, false
		}
		if !errors.Is(err, upgrade.ErrInvalidHost) {
			// An invalid Host is header_up's: a placeholder of the
			// request (whose client must not get the upstreams marked
			// failed) or of the upstream (another may do).
			h.pool.markFailed(idx, now())
		}
	}
	// A Host that header_up made invalid fails every try the same: the
	// request's own, as a stream's 2xx is the path's.
	if allAre(*errs, upgrade.ErrInvalidHost) {
		return nil, nil, false
	}
	return nil, nil, ctx.Err() == nil
}

// tryAgain says whether an upgrade that arrived at start and failed on
// every upstream tries times gets another try (TryDuration and Retries),
// after waiting TryInterval; the wait ends without one when the client
// goes away, the configuration is unloaded, or Caddy exits.
func (h *Handler) tryAgain(ctx context.Context, start time.Time, tries int) bool {
	switch {
	case h.TryDuration <= 0 && h.Retries <= 0:
		return false
	case h.Retries > 0 && tries > h.Retries:
		return false
	case h.TryDuration > 0 && now().Sub(start) >= time.Duration(h.TryDuration):
		return false
	}
	var closed chan struct{} // nil, never ready, without a registry
	if h.live != nil {
		closed = h.live.closed
	}
	t := time.NewTimer(time.Duration(h.TryInterval))
	defer t.Stop()
	// An exit stops the servers (waiting for this handler) before it
	// unloads the configuration: the wait looks for it itself.
	exit := time.NewTicker(exitPoll)
	defer exit.Stop()
	for {
		select {
		case <-t.C:
			return !exiting()
		case <-ctx.Done():
			return false
		case <-closed:
			return false
		case <-exit.C:
			if exiting() {
				return false
			}
		}
	}
}

// dialNext dials the upstreams of order in turn until one connects: it
// returns the connection and its upstream, which counts it from the
// dial on (as reverse_proxy counts a request before its round trip:
// upgrades that come meanwhile see it) until the lease's release, and
// the upstreams after it. A failed dial marks its upstream failed and
// adds to errs; when none connects, the connection is nil. When ctx
// ends (the client went away), it stops with ctx's error and marks no
// upstream failed: the dial did not fail for the upstream's sake.
func (h *Handler) dialNext(ctx context.Context, order []int, errs *[]error) (net.Conn, int, *lease, []int, time.Time, error) {
	for i, idx := range order {
		up := h.pool.list[idx]
		held := h.pool.tryHold(idx)
		if held == nil {
			*errs = append(*errs, fmt.Errorf("upstream %s: %w", up.Raw, errFull))
			continue
		}
		began := now()
		conn, err := h.dialOne(ctx, up)
		if ctx.Err() != nil {
			held.release()
			if conn != nil {
				conn.Close()
			}
			return nil, 0, nil, nil, began, ctx.Err()
		}
		if err != nil {
			held.release()
			h.pool.markFailed(idx, now())
			*errs = append(*errs, fmt.Errorf("dialing upstream %s: %w", up.Raw, err))
			continue
		}
		return conn, idx, held, order[i+1:], began, nil
	}
	return nil, 0, nil, nil, time.Time{}, nil
}

// allAre reports whether errs holds errors and each is target.
func allAre(errs []error, target error) bool {
	return len(errs) > 0 && !slices.ContainsFunc(errs, func(e error) bool { return !errors.Is(e, target) })
}

// errFull is an upstream skipped at its unhealthy_request_count.
var errFull = errors.New("at its unhealthy_request_count")

// unhealthyAnswer says why a valid answer from an upstream, dialed at
// began, counts as a failure of it (its status is one of
// unhealthy_status, or it came later than unhealthy_latency), or "".
func (h *Handler) unhealthyAnswer(status int, began time.Time) string {
	pc := h.PassiveHealthChecks
	switch {
	case pc == nil:
		return ""
	case pc.StatusUnhealthy(status):
		return fmt.Sprintf("status %d is an unhealthy_status", status)
	case pc.UnhealthyLatency > 0 && now().Sub(began) > time.Duration(pc.UnhealthyLatency):
		return fmt.Sprintf("answered after %s, past unhealthy_latency", now().Sub(began).Round(time.Millisecond))
	}
	return ""
}

func (h *Handler) dialOne(ctx context.Context, up relayconfig.Upstream) (net.Conn, error) {
	d := &net.Dialer{Timeout: time.Duration(h.DialTimeout)}
	if !up.TLS {
		return d.DialContext(ctx, up.Network, up.Addr)
	}
	tc := h.tlsBase.Clone()
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(up.Addr)
	}
	td := &tls.Dialer{NetDialer: d, Config: tc}
	return td.DialContext(ctx, "tcp", up.Addr)
}

// backendTLS builds the TLS config of wss:// dials: the trusted CAs
// read from TLSTrustedCACerts (the system's roots when there are none),
// TLSServerName and TLSInsecureSkipVerify.
func (h *Handler) backendTLS() (*tls.Config, error) {
	tc := &tls.Config{
		ServerName:         h.TLSServerName,
		NextProtos:         []string{"http/1.1"},
		InsecureSkipVerify: h.TLSInsecureSkipVerify, //nolint:gosec // opt-in for test backends
	}
	if len(h.TLSTrustedCACerts) == 0 {
		return tc, nil
	}
	tc.RootCAs = x509.NewCertPool()
	for _, f := range h.TLSTrustedCACerts {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("websocket_relay: tls_trusted_ca_certs: %w", err)
		}
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("websocket_relay: tls_trusted_ca_certs: no PEM certificate in %s", f)
		}
	}
	return tc, nil
}

// backendRequest builds the upgrade request for the backend: the client's
// path and query under the upstream's path, its end-to-end headers
// (Sec-WebSocket-*, Origin, cookies, auth), hop-by-hop headers removed and
// X-Forwarded-* added as reverse_proxy does, then header_up (ops, nil for
// none). The headers the handshake itself needs are set again last, even
// if the client's Connection header or header_up reached them, and a
// Host left empty becomes the upstream's address (for a Unix socket
// upstream, the client's Host).
func backendRequest(r *http.Request, up relayconfig.Upstream, ops *headers.HeaderOps) *http.Request {
	out := r.Clone(context.Background())
	out.Header = r.Header.Clone()
	upgrade.RemoveHopHeaders(out.Header)
	setForwarded(out.Header, r)
	applyHeaderOps(out, r, up, ops)
	// The upgrade's own fields, whatever header_up did (a wildcard may
	// reach them); an upgrade request has no body.
	out.Header.Del("Content-Length")
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", "websocket")
	out.Header.Set("Sec-WebSocket-Version", r.Header.Get("Sec-WebSocket-Version"))
	out.Header.Set("Sec-WebSocket-Key", r.Header.Get("Sec-WebSocket-Key"))
	switch {
	case out.Host != "":
	case up.Network == "unix":
		out.Host = r.Host // a socket's path is no host
	default:
		// As reverse_proxy's request goes: to the upstream's address,
		// without a scheme's default port.
		// An IPv6 zone is not sent (RFC 6874), as net/http does not.
		host, port, _ := net.SplitHostPort(up.Addr)
		host, _, _ = strings.Cut(host, "%")
		out.Host = net.JoinHostPort(host, port)
		if up.TLS && port == "443" || !up.TLS && port == "80" {
			out.Host = host
			if strings.Contains(host, ":") {
				out.Host = "[" + host + "]"
			}
		}
	}
	u := *r.URL
	u.Scheme, u.Host = "", ""
	if up.Path != "" {
		// Both are escaped forms: join those, so that an escape in either
		// (%20, %2F) reaches the backend as it was written.
		escaped := up.Path + u.EscapedPath()
		if p, err := url.PathUnescape(escaped); err == nil {
			u.Path, u.RawPath = p, escaped
		}
	}
	out.URL = &u
	out.RequestURI = ""
	return out
}

// headerOps converts header_up to Caddy's header operations, which
// apply it as reverse_proxy's header_up is applied.
func headerOps(ctx caddy.Context, ops *relayconfig.HeaderOps) (*headers.HeaderOps, error) {
	if ops == nil {
		return nil, nil
	}
	c := &headers.HeaderOps{Add: ops.Add, Set: ops.Set, Delete: ops.Delete}
	for k, rs := range ops.Replace {
		if c.Replace == nil {
			c.Replace = make(map[string][]headers.Replacement)
		}
		for _, r := range rs {
			c.Replace[k] = append(c.Replace[k], headers.Replacement{Search: r.Search, SearchRegexp: r.SearchRegexp, Replace: r.Replace})
		}
	}
	if err := c.Provision(ctx); err != nil {
		return nil, fmt.Errorf("websocket_relay: header_up: %w", err)
	}
	return c, nil
}

// applyHeaderOps applies header_up to out, the request for upstream up,
// as reverse_proxy does: with r's placeholders and the upstream's (named
// as reverse_proxy names them, so that {upstream_hostport} means the
// same), and "Host" as out's host (left empty, backendRequest takes the
// upstream's address, as reverse_proxy's request does; for a Unix socket
// the client's).
func applyHeaderOps(out, r *http.Request, up relayconfig.Upstream, ops *headers.HeaderOps) {
	if ops == nil {
		return
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		repl = caddy.NewReplacer()
	}
	host, port, _ := net.SplitHostPort(up.Addr)
	repl.Set("http.reverse_proxy.upstream.hostport", up.Addr)
	repl.Set("http.reverse_proxy.upstream.host", host)
	repl.Set("http.reverse_proxy.upstream.port", port)
	// Host takes part as the last value of a Host field, as in Caddy's
	// HeaderOps.ApplyToRequest (which wants the replacer in out's context).
	out.Header["Host"] = []string{out.Host}
	ops.ApplyTo(out.Header, repl)
	out.Host = ""
	if v := out.Header["Host"]; len(v) > 0 {
		out.Host = v[len(v)-1]
	}
	delete(out.Header, "Host")
}

// setForwarded sets X-Forwarded-For, -Proto and -Host as Caddy's
// reverse_proxy does. Values that came in are kept only from a trusted
// proxy (the server's trusted_proxies): its X-Forwarded-For list, with
// the peer's address added, and the last of its -Proto and -Host values
// (the one it set). Each goes out as one header. A peer on a Unix socket
// (RemoteAddr "@") adds no address; an untrusted one, or a RemoteAddr
// that is not host:port, gets none of the three.
func setForwarded(h http.Header, r *http.Request) {
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	var ip string
	if r.RemoteAddr != "@" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = ""
		}
		ip, _, _ = strings.Cut(host, "%") // an IPv6 zone is the peer's own business
	}
	if ip == "" && !trusted {
		for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
			h.Del(k)
		}
		return
	}
	prior := strings.Join(h.Values("X-Forwarded-For"), ", ")
	switch {
	case trusted && prior != "" && ip != "":
		h.Set("X-Forwarded-For", prior+", "+ip)
	case trusted && prior != "":
		h.Set("X-Forwarded-For", prior)
	case ip != "":
		h.Set("X-Forwarded-For", ip)
	default:
		h.Del("X-Forwarded-For")
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	h.Set("X-Forwarded-Proto", lastFrom(h, "X-Forwarded-Proto", trusted, proto))
	h.Set("X-Forwarded-Host", lastFrom(h, "X-Forwarded-Host", trusted, r.Host))
}

// lastFrom is the last value of header k when it came from a trusted
// proxy and is not empty, else own.
func lastFrom(h http.Header, k string, trusted bool, own string) string {
	if v := h.Values(k); trusted && len(v) > 0 && v[len(v)-1] != "" {
		return v[len(v)-1]
	}
	return own
}

// handshake sends the upgrade request on conn and reads the backend's
// answer within HandshakeTimeout.
func (h *Handler) handshake(conn net.Conn, up relayconfig.Upstream, r *http.Request) (*dialed, error) {
	_ = conn.SetDeadline(now().Add(time.Duration(h.HandshakeTimeout)))
	// A client that goes away cuts the wait for the backend short.
	stop := context.AfterFunc(r.Context(), func() { _ = conn.SetDeadline(aLongTimeAgo) })
	req := backendRequest(r, up, h.headerUp)
	bw := requestWriters.Get().(*bufio.Writer)
	bw.Reset(conn)
	br := answerReaders.Get().(*bufio.Reader)
	br.Reset(conn)
	resp, err := upgrade.Exchange(bw, br, req, r.Header.Get("Sec-WebSocket-Key"))
	bw.Reset(nil)
	requestWriters.Put(bw)
	if !stop() && err == nil {
		// The client went away as the answer came: the deadline may be
		// cut, or about to be.
		err = fmt.Errorf("client went away: %w", context.Cause(r.Context()))
	}
	if err != nil {
		putAnswerReader(br)
		return nil, err
	}
	// The body of an answer other than 101 is read through br, and
	// passAnswer pools it again; a 101 has no body, so nothing but d.br
	// refers to br from here on.
	if resp.StatusCode == http.StatusSwitchingProtocols {
		_ = conn.SetDeadline(time.Time{})
	}
	return &dialed{conn: conn, upstream: up, resp: resp, br: br}, nil
}
