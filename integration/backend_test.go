package integration

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// appOpts configure an app backend's WebSocket side.
type appOpts struct {
	// Compression lets the backend negotiate permessage-deflate.
	Compression bool
	// Subprotocols are the backend's protocols, in its order of preference.
	Subprotocols []string
	// TLS serves https and wss (with httptest's self-signed certificate).
	TLS bool
	// Unix listens on a Unix socket in a temporary directory instead of
	// 127.0.0.1; Addr is then the upstream "unix/<path>".
	Unix bool
	// Listen is the TCP address to listen on (default: a free port).
	Listen string
}

// app is the HTTP application that caddy fronts: plain HTTP for every
// request that is not an upgrade (reached through reverse_proxy) and
// gorilla/websocket endpoints for upgrades (reached through the relay):
//
//	.../echo...     echoes every message, keeping its type
//	.../push...     reads and drops messages; the test writes with Send
//	.../frames...   a raw gobwas/ws backend that echoes frame by frame
//	/status/<code>  answers <code> with a known body, even to an upgrade
//	/page.html      the Chromium test page (set with app.Page)
//	anything else   200 "hello from backend <path>"
type app struct {
	t    *testing.T
	opts appOpts
	srv  *httptest.Server
	Addr string // host:port of the backend (unix/<path> with appOpts.Unix)
	// Accepted counts the WebSocket connections accepted.
	Accepted atomic.Int64

	// health is the status of /healthz (0: 200).
	health atomic.Int32
	// healthBody starts the body of /healthz ("" for "healthy"), which
	// goes on with the check's X-Token.
	healthBody atomic.Value

	mu    sync.Mutex
	page  string
	conns map[string]chan *backendConn // by URL path
	raw   map[string]chan *rawBackendConn
}

// newApp starts an app backend on 127.0.0.1 for the life of the test.
func newApp(t *testing.T, opts appOpts) *app {
	t.Helper()
	a := &app{t: t, opts: opts, conns: make(map[string]chan *backendConn), raw: make(map[string]chan *rawBackendConn)}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(a.serveHTTP))
	if opts.Unix {
		// Short: a socket's path must fit in 108 bytes.
		dir, err := os.MkdirTemp("", "wsr")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		ln, err := net.Listen("unix", filepath.Join(dir, "app.sock"))
		if err != nil {
			t.Fatal(err)
		}
		a.srv.Listener.Close()
		a.srv.Listener = ln
		a.srv.Start()
		a.Addr = "unix/" + ln.Addr().String()
		t.Cleanup(a.srv.Close)
		return a
	}
	if opts.Listen != "" {
		ln, err := net.Listen("tcp", opts.Listen)
		if err != nil {
			t.Fatal(err)
		}
		a.srv.Listener.Close()
		a.srv.Listener = ln
	}
	if opts.TLS {
		a.srv.StartTLS()
	} else {
		a.srv.Start()
	}
	a.Addr = a.srv.Listener.Addr().String()
	t.Cleanup(a.srv.Close)
	return a
}

// connCh returns the channel of gorilla connections accepted on path.
func (a *app) connCh(path string) chan *backendConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := a.conns[path]
	if !ok {
		ch = make(chan *backendConn, 64)
		a.conns[path] = ch
	}
	return ch
}

// rawCh returns the channel of raw connections accepted on path.
func (a *app) rawCh(path string) chan *rawBackendConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := a.raw[path]
	if !ok {
		ch = make(chan *rawBackendConn, 64)
		a.raw[path] = ch
	}
	return ch
}

// statusBody is the body the backend sends with /status/<code>.
func statusBody(code int) string {
	return fmt.Sprintf("backend says %d: %s\n", code, http.StatusText(code))
}

// SetPage sets the HTML served at /page.html.
// SetHealth sets the status of /healthz.
func (a *app) SetHealth(status int) { a.health.Store(int32(status)) }

// SetHealthBody sets the start of the body of /healthz.
func (a *app) SetHealthBody(s string) { a.healthBody.Store(s) }

func (a *app) SetPage(html string) {
	a.mu.Lock()
	a.page = html
	a.mu.Unlock()
}

func (a *app) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/status/"):
		code, err := strconv.Atoi(strings.TrimPrefix(p, "/status/"))
		if err != nil {
			code = http.StatusTeapot
		}
		w.Header().Set("X-Backend-Status", "yes")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		io.WriteString(w, statusBody(code))
	case p == "/healthz":
		w.WriteHeader(cmp.Or(int(a.health.Load()), http.StatusOK))
		start, _ := a.healthBody.Load().(string)
		io.WriteString(w, cmp.Or(start, "healthy")+" "+r.Header.Get("X-Token"))
	case p == "/page.html":
		a.mu.Lock()
		page := a.page
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	case strings.Contains(p, "/frames") && websocket.IsWebSocketUpgrade(r):
		a.serveRawFrames(w, r)
	case (strings.Contains(p, "/echo") || strings.Contains(p, "/push")) && websocket.IsWebSocketUpgrade(r):
		a.serveWS(w, r, strings.Contains(p, "/echo"))
	default:
		fmt.Fprintf(w, "hello from backend %s", p)
	}
}

// closeRecord is how a backend connection ended.
type closeRecord struct {
	Code   int    // close code received, or -1 when the TCP connection ended without a close frame
	Reason string // close reason received
	Err    error  // the read error that ended the connection
	At     time.Time
}

// backendConn is the backend side of one relayed connection.
type backendConn struct {
	Req   *http.Request // the upgrade request as the backend saw it
	Conn  *websocket.Conn
	Pings chan string // payloads of pings received
	Pongs chan string // payloads of pongs received
	Msgs  chan []byte // messages received on /push
	// Closed receives one record when the connection ends.
	Closed chan closeRecord

	wmu sync.Mutex
}

func (a *app) serveWS(w http.ResponseWriter, r *http.Request, echo bool) {
	up := websocket.Upgrader{
		EnableCompression: a.opts.Compression,
		Subprotocols:      a.opts.Subprotocols,
		CheckOrigin:       func(*http.Request) bool { return true },
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		a.t.Logf("backend upgrade failed: %v", err)
		return
	}
	bc := &backendConn{
		Req:    r.Clone(r.Context()),
		Conn:   conn,
		Pings:  make(chan string, 256),
		Pongs:  make(chan string, 256),
		Msgs:   make(chan []byte, 256),
		Closed: make(chan closeRecord, 1),
	}
	conn.EnableWriteCompression(a.opts.Compression)
	conn.SetPingHandler(func(data string) error {
		bc.Pings <- data
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})
	conn.SetPongHandler(func(data string) error {
		bc.Pongs <- data
		return nil
	})
	a.Accepted.Add(1)
	a.connCh(r.URL.Path) <- bc
	bc.readLoop(echo)
}

// readLoop reads until the connection ends, echoing when asked to, and
// records how it ended.
func (bc *backendConn) readLoop(echo bool) {
	defer bc.Conn.Close()
	for {
		typ, rd, err := bc.Conn.NextReader()
		if err != nil {
			rec := closeRecord{Code: -1, Err: err, At: time.Now()}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				rec.Code, rec.Reason = ce.Code, ce.Text
			}
			bc.Closed <- rec
			return
		}
		if !echo {
			data, err := io.ReadAll(rd)
			if err == nil {
				bc.Msgs <- data
			}
			continue
		}
		bc.wmu.Lock()
		wr, err := bc.Conn.NextWriter(typ)
		if err == nil {
			_, err = io.Copy(wr, rd)
			if cerr := wr.Close(); err == nil {
				err = cerr
			}
		}
		bc.wmu.Unlock()
		if err != nil {
			// The read side reports how the connection ended.
			continue
		}
	}
}

// Send writes one message to the client.
func (bc *backendConn) Send(typ int, data []byte) error {
	bc.wmu.Lock()
	defer bc.wmu.Unlock()
	bc.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return bc.Conn.WriteMessage(typ, data)
}

// Ping sends a ping of the backend's own.
func (bc *backendConn) Ping(payload string) error {
	return bc.Conn.WriteControl(websocket.PingMessage, []byte(payload), time.Now().Add(5*time.Second))
}

// CloseWith sends a close frame with code and reason.
func (bc *backendConn) CloseWith(code int, reason string) error {
	return bc.Conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(code, reason), time.Now().Add(5*time.Second))
}

// Kill ends the TCP connection without a close frame: with a FIN, or with
// a RST when rst is true.
func (bc *backendConn) Kill(rst bool) {
	nc := bc.Conn.NetConn()
	if tc, ok := nc.(*net.TCPConn); ok && rst {
		tc.SetLinger(0)
	}
	nc.Close()
}

// accept waits for the backend to accept the next gorilla connection on
// path (the URL path the client asked for, without the query); parallel
// tests sharing an app use distinct paths.
func (a *app) accept(t *testing.T, path string) *backendConn {
	t.Helper()
	select {
	case bc := <-a.connCh(path):
		return bc
	case <-time.After(10 * time.Second):
		t.Fatalf("the backend accepted no WebSocket connection on %s within 10s", path)
		return nil
	}
}

// waitClosed waits up to d for the backend connection to end.
func (bc *backendConn) waitClosed(t *testing.T, d time.Duration) closeRecord {
	t.Helper()
	select {
	case rec := <-bc.Closed:
		return rec
	case <-time.After(d):
		t.Fatalf("the backend connection did not end within %v", d)
		return closeRecord{}
	}
}

// noPongs asserts that the backend has received no pong and no ping.
func (bc *backendConn) noPingsOrPongs(t *testing.T) {
	t.Helper()
	if n := len(bc.Pongs); n > 0 {
		t.Errorf("the backend received %d pongs (first %q); the relay must consume pongs to its own pings", n, <-bc.Pongs)
	}
	if n := len(bc.Pings); n > 0 {
		t.Errorf("the backend received %d pings (first %q) that nobody sent it", n, <-bc.Pings)
	}
}
