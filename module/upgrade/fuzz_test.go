package upgrade

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzBackendAnswer feeds arbitrary bytes as a backend's answer to the
// relay's upgrade request. Exchange must never panic; an answer it takes
// as a 101 must be a valid one for the request's key, and the extensions
// it allows must come from that answer. What it wrote must be the request.
func FuzzBackendAnswer(f *testing.F) {
	good := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	f.Add([]byte(good + "\r\n"))
	f.Add([]byte(good + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n\x81\x02hi"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"))
	f.Add([]byte("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + good + "\r\n"))
	f.Add([]byte("garbage\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 101 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, answer []byte) {
		req := upgradeRequest(nil)
		key := req.Header.Get("Sec-WebSocket-Key")
		var sent bytes.Buffer
		resp, err := Exchange(bufio.NewWriter(&sent), bufio.NewReader(bytes.NewReader(answer)), req)
		if !strings.HasPrefix(sent.String(), "GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n") ||
			!strings.HasSuffix(sent.String(), "\r\n\r\n") {
			t.Fatalf("wrote %q, not the upgrade request", sent.String())
		}
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			return
		}
		if resp.Header.Get("Sec-WebSocket-Accept") != AcceptFor(key) {
			t.Fatalf("accepted a 101 with Sec-WebSocket-Accept %q", resp.Header.Get("Sec-WebSocket-Accept"))
		}
		if rsv := AllowedRSV(resp.Header.Values("Sec-WebSocket-Extensions")); rsv != 0 && len(resp.Header.Values("Sec-WebSocket-Extensions")) == 0 {
			t.Fatalf("RSV bits %#x allowed without an extension", rsv)
		}
	})
}

// FuzzCheckClientHandshake feeds arbitrary header values to the upgrade
// checks: no panic, and an accepted key always decodes to 16 bytes.
func FuzzCheckClientHandshake(f *testing.F) {
	f.Add("Upgrade", "websocket", "13", "dGhlIHNhbXBsZSBub25jZQ==")
	f.Add("keep-alive, upgrade", "WebSocket", "8", "")
	f.Add("", "", "13 ", "AAAAAAAAAAAAAAAAAAAAAA==")
	f.Fuzz(func(t *testing.T, conn, upgrade, version, key string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Connection"] = []string{conn}
		r.Header["Upgrade"] = []string{upgrade}
		r.Header["Sec-Websocket-Version"] = []string{version}
		r.Header["Sec-Websocket-Key"] = []string{key}
		_ = IsUpgrade(r)
		if status, _ := CheckClientHandshake(r); status == 0 && !ValidKey(key) {
			t.Fatalf("accepted key %q", key)
		}
	})
}
