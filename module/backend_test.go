package wsrelay

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gobwas/ws"
	"go.uber.org/zap"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// answerOnce serves one upgrade request on a pipe with answer, written
// in one piece (so what follows the headers lands in the relay's reader),
// and closes the pipe.
func answerOnce(t *testing.T, answer string) net.Conn {
	t.Helper()
	relaySide, backendSide := net.Pipe()
	go func() {
		defer backendSide.Close()
		buf := make([]byte, 4096)
		_ = backendSide.SetDeadline(time.Now().Add(5 * time.Second))
		for read := ""; !strings.Contains(read, "\r\n\r\n"); {
			n, err := backendSide.Read(buf)
			if err != nil {
				return
			}
			read += string(buf[:n])
		}
		// A pipe's write returns once all of it has been read; closing
		// then ends an answer that is cut short at once, not at the
		// handshake timeout.
		_, _ = backendSide.Write([]byte(answer))
	}()
	t.Cleanup(func() { relaySide.Close() })
	return relaySide
}

// TestHandshakeBufferedBytes: the bytes a backend sends right behind its
// 101 reach the relay, each connection's own, though the handshake's
// reader is pooled and reused; a non-101 answer's body is read whole.
func TestHandshakeBufferedBytes(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	const ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
	h := &Handler{Options: relayconfig.Options{HandshakeTimeout: caddy.Duration(5 * time.Second)}}
	r := upgradeRequest(func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", key) })
	tails := []string{"\x82\x05first", "", "\x81\x02hi\x89\x00", strings.Repeat("x", 3000), "\x82\x01y"}
	var got [][]byte
	for i, tail := range tails {
		d, err := h.handshake(answerOnce(t, ok+tail), relayconfig.Upstream{Raw: "test", Addr: "test:1"}, r)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		got = append(got, d.takeBuffered())
	}
	// Checked after all of them: each copy must outlive its reader's reuse.
	for i, tail := range tails {
		if !bytes.Equal(got[i], []byte(tail)) {
			t.Fatalf("answer %d: bytes behind the 101 %q, want %q", i, got[i], tail)
		}
	}
	// A rejected 101 and an unreadable answer give their readers back too;
	// the next connection must still see only its own bytes.
	if _, err := h.handshake(answerOnce(t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nleftover"), relayconfig.Upstream{Raw: "test"}, r); err == nil {
		t.Fatal("a 101 without Connection: upgrade was accepted")
	}
	if _, err := h.handshake(answerOnce(t, "garbage\r\n\r\nmore garbage"), relayconfig.Upstream{Raw: "test"}, r); err == nil {
		t.Fatal("garbage was accepted as an answer")
	}
	d, err := h.handshake(answerOnce(t, "HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"), relayconfig.Upstream{Raw: "test"}, r)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(d.resp.Body)
	if err != nil || string(body) != "nope!" || d.resp.StatusCode != http.StatusForbidden {
		t.Fatalf("403 answer: status %d, body %q, %v", d.resp.StatusCode, body, err)
	}
	d, err = h.handshake(answerOnce(t, ok+"\x82\x01z"), relayconfig.Upstream{Raw: "test"}, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.takeBuffered(); string(got) != "\x82\x01z" {
		t.Fatalf("bytes behind the 101 after the failures %q", got)
	}
}

// TestHandshakeSkipsInformational: informational answers (103 Early
// Hints, 100 Continue) before the backend's real answer are dropped, so
// its 403 or 101 is what counts; more than upgrade.Max1xx of them fail the
// handshake.
func TestHandshakeSkipsInformational(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	const hints = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
	const ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
	h := &Handler{Options: relayconfig.Options{HandshakeTimeout: caddy.Duration(5 * time.Second)}}
	r := upgradeRequest(func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", key) })
	d, err := h.handshake(answerOnce(t, hints+"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"), relayconfig.Upstream{Raw: "test"}, r)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(d.resp.Body)
	if err != nil || d.resp.StatusCode != http.StatusForbidden || string(body) != "nope!" {
		t.Fatalf("after a 103: status %d, body %q, %v; want the 403 behind it", d.resp.StatusCode, body, err)
	}
	d, err = h.handshake(answerOnce(t, "HTTP/1.1 100 Continue\r\n\r\n"+hints+ok+"\x82\x01z"), relayconfig.Upstream{Raw: "test"}, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.takeBuffered(); d.resp.StatusCode != http.StatusSwitchingProtocols || string(got) != "\x82\x01z" {
		t.Fatalf("after a 100 and a 103: status %d, bytes behind %q", d.resp.StatusCode, got)
	}
	_, err = h.handshake(answerOnce(t, strings.Repeat(hints, upgrade.Max1xx+1)+ok), relayconfig.Upstream{Raw: "test"}, r)
	if err == nil || !strings.Contains(err.Error(), "informational") {
		t.Fatalf("%d informational answers: %v, want an error saying so", upgrade.Max1xx+1, err)
	}
}

// TestRelayAbandonsBackend: when the client's connection cannot be taken
// over after the backend said 101, the backend gets close 1001 (masked,
// as from any client), the handshake's pooled reader goes back and the
// upstream no longer counts the connection.
func TestRelayAbandonsBackend(t *testing.T) {
	relaySide, backendSide := net.Pipe()
	defer backendSide.Close()
	br := answerReaders.Get().(*bufio.Reader)
	br.Reset(relaySide)
	d := &dialed{conn: relaySide, upstream: relayconfig.Upstream{Raw: "test", Addr: "abandon.test:1"}, br: br,
		resp: &http.Response{StatusCode: http.StatusSwitchingProtocols, Header: http.Header{}}}
	got := make(chan ws.Frame, 1)
	go func() {
		_ = backendSide.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, err := ws.ReadFrame(backendSide)
		if err != nil {
			t.Error(err)
		}
		got <- f
	}()
	h := &Handler{logger: zap.NewNop(), pool: newUpstreamPool([]relayconfig.Upstream{d.upstream}, nil)}
	held := h.pool.hold(0)
	// A ResponseRecorder cannot be hijacked.
	if err := h.relay(httptest.NewRecorder(), upgradeRequest(nil), d, nil, held); err == nil {
		t.Fatal("relay reported no error for a connection it could not take over")
	}
	if n := h.pool.conns[0].Load(); n != 0 {
		t.Fatalf("upstream still counts %d connections after the relay gave up", n)
	}
	f := <-got
	if !f.Header.Masked || f.Header.OpCode != ws.OpClose {
		t.Fatalf("backend got %+v, want a masked close frame", f.Header)
	}
	f = ws.UnmaskFrameInPlace(f)
	if code, reason := ws.ParseCloseFrameData(f.Payload); code != ws.StatusGoingAway || reason != "client went away" {
		t.Fatalf("close %d %q, want 1001 \"client went away\"", code, reason)
	}
	if d.br != nil {
		t.Fatal("the handshake's reader was not given back")
	}
}

// TestBackendTLSConfig: tls_trusted_ca_certs replaces the system's roots
// with the files' certificates; a missing file, or one without a PEM
// certificate, fails provisioning with its name.
func TestBackendTLSConfig(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &Handler{}
	tc, err := h.backendTLS()
	if err != nil || tc.RootCAs != nil || tc.ServerName != "" || tc.InsecureSkipVerify {
		t.Fatalf("defaults: %+v, %v; want the system's roots, no server name, verification on", tc, err)
	}
	for _, tcase := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.pem"), "missing.pem: no such file"},
		{notPEM, "no PEM certificate in " + notPEM},
	} {
		h := &Handler{Options: relayconfig.Options{TLSTrustedCACerts: []string{tcase.file}}}
		if _, err := h.backendTLS(); err == nil || !strings.Contains(err.Error(), tcase.want) {
			t.Errorf("%s: error %v, want one containing %q", tcase.file, err, tcase.want)
		}
	}
	h = &Handler{Options: relayconfig.Options{TLSServerName: "b.internal", TLSInsecureSkipVerify: true}}
	if tc, err := h.backendTLS(); err != nil || tc.ServerName != "b.internal" || !tc.InsecureSkipVerify {
		t.Fatalf("server name and insecure: %+v, %v", tc, err)
	}
}
