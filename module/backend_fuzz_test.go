package wsrelay

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// FuzzBackendAnswer feeds arbitrary bytes as a backend's answer to the
// upgrade request. The handshake must never panic or hang; an answer it
// takes as a 101 must be a valid one for the client's key, and the
// extensions it allows must come from that answer.
func FuzzBackendAnswer(f *testing.F) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	good := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	f.Add([]byte(good + "\r\n"))
	f.Add([]byte(good + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n\x81\x02hi"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"))
	f.Add([]byte("garbage\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 101 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, answer []byte) {
		h := &Handler{HandshakeTimeout: caddy.Duration(time.Second)}
		relaySide := answerOnce(t, string(answer))
		r := upgradeRequest(func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", key) })
		d, err := h.handshake(relaySide, Upstream{Raw: "fuzz", Addr: "fuzz:1"}, r)
		if err != nil || d.resp.StatusCode != http.StatusSwitchingProtocols {
			return
		}
		if d.resp.Header.Get("Sec-WebSocket-Accept") != acceptFor(key) {
			t.Fatalf("accepted a 101 with Sec-WebSocket-Accept %q", d.resp.Header.Get("Sec-WebSocket-Accept"))
		}
		if rsv := allowedRSV(d.resp.Header.Values("Sec-WebSocket-Extensions")); rsv != 0 && len(d.resp.Header.Values("Sec-WebSocket-Extensions")) == 0 {
			t.Fatalf("RSV bits %#x allowed without an extension", rsv)
		}
	})
}
