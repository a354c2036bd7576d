package upgrade

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzBackendAnswer feeds arbitrary bytes as a backend's answer to the
// relay's upgrade request. Exchange must never panic; an answer it takes
// as a 101 must be a valid one for the client's key, with no body: every
// byte after its headers must still be in the reader, for the relay.
func FuzzBackendAnswer(f *testing.F) {
	good := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	f.Add([]byte(good + "\r\n"))
	f.Add([]byte(good + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n\x81\x02hi"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"))
	f.Add([]byte("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + good + "\r\n"))
	f.Add([]byte("garbage\r\n\r\n"))
	f.Add([]byte(good + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte(good + "Content-Length: 3\r\n\r\n\x82\x01z"))
	f.Fuzz(func(t *testing.T, answer []byte) {
		const key = "dGhlIHNhbXBsZSBub25jZQ=="
		req := upgradeRequest(nil)
		br := bufio.NewReader(bytes.NewReader(answer))
		resp, err := Exchange(bufio.NewWriter(io.Discard), br, req, key)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			return
		}
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != AcceptFor(key) {
			t.Fatalf("accepted a 101 with Sec-WebSocket-Accept %q", got)
		}
		rest, _ := io.ReadAll(br)
		if end := headersEnd(answer); !bytes.Equal(rest, answer[end:]) {
			t.Fatalf("left %q in the reader, want what follows the 101's headers, %q", rest, answer[end:])
		}
	})
}

// headersEnd returns where the headers of the 101 in answer end, found
// without net/http: answers follow one another, each a status line and
// header lines ended by an empty one (lines end at \n, a \r before it
// dropped), and the 1xx answers before the 101 have no body. It is only
// called on an answer that Exchange took as a 101.
func headersEnd(answer []byte) int {
	pos := 0
	line := func() string {
		i := bytes.IndexByte(answer[pos:], '\n')
		if i < 0 {
			panic("an accepted answer without the end of its headers")
		}
		l := strings.TrimSuffix(string(answer[pos:pos+i]), "\r")
		pos += i + 1
		return l
	}
	for {
		// As net/http reads a status line: the code follows the first
		// space and any more spaces.
		_, status, _ := strings.Cut(line(), " ")
		code, _, _ := strings.Cut(strings.TrimLeft(status, " "), " ")
		for line() != "" {
		}
		if code == "101" {
			return pos
		}
	}
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
		// The same fields as an HTTP/2 extended CONNECT, upgrade as its
		// :protocol: one that passes makes a backend upgrade that passes
		// the HTTP/1.1 checks.
		c := httptest.NewRequest(http.MethodConnect, "/", nil)
		c.ProtoMajor = 2
		c.Header[":protocol"] = []string{upgrade}
		c.Header["Sec-Websocket-Version"] = []string{version}
		if !IsExtendedConnect(c) {
			return
		}
		if status, _ := CheckExtendedConnect(c); status != 0 {
			return
		}
		out := AsUpgrade(c, NewKey())
		if status, reason := CheckClientHandshake(out); status != 0 || !IsUpgrade(out) {
			t.Fatalf("extended CONNECT with :protocol %q, version %q: backend upgrade refused: %d %s", upgrade, version, status, reason)
		}
	})
}
