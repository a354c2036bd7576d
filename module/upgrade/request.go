package upgrade

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// IsUpgrade reports whether r asks for a WebSocket upgrade (RFC 6455
// 4.2.1): a GET whose Connection header lists "upgrade" and whose Upgrade
// header lists "websocket", both compared without case.
func IsUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade") &&
		httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "websocket")
}

// IsExtendedConnect reports whether r opens a WebSocket with HTTP/2's or
// HTTP/3's extended CONNECT (RFC 8441, RFC 9220): a CONNECT whose
// :protocol pseudo-header is "websocket", which Go's HTTP/2 server puts
// in r.Header and quic-go's HTTP/3 server in r.Proto.
func IsExtendedConnect(r *http.Request) bool {
	if r.Method != http.MethodConnect {
		return false
	}
	switch r.ProtoMajor {
	case 2:
		return strings.EqualFold(r.Header.Get(":protocol"), "websocket")
	case 3:
		return strings.EqualFold(r.Proto, "websocket")
	}
	return false
}

// CheckExtendedConnect checks the rest of an extended CONNECT (RFC 8441
// 5, RFC 9220 3): Sec-WebSocket-Version 13; there is no key. It returns
// 0 when the request is good, else a status and a one-line reason.
func CheckExtendedConnect(r *http.Request) (status int, reason string) {
	versions := r.Header.Values("Sec-WebSocket-Version")
	if len(versions) != 1 || strings.TrimSpace(versions[0]) != "13" {
		return http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version: want 13"
	}
	return 0, ""
}

// AsUpgrade returns an HTTP/1.1 upgrade request for the backend made from
// r, an extended CONNECT: a GET with Connection and Upgrade, key, the
// :protocol pseudo-header gone, and r's context, URL and other headers.
func AsUpgrade(r *http.Request, key string) *http.Request {
	out := r.Clone(r.Context())
	out.Method = http.MethodGet
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Body = http.NoBody
	delete(out.Header, ":protocol")
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", "websocket")
	out.Header.Set("Sec-WebSocket-Key", key)
	return out
}

// NewKey returns a fresh Sec-WebSocket-Key (RFC 6455 4.1: 16 random
// bytes in base64).
func NewKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// CheckClientHandshake checks the rest of an upgrade request. It returns
// 0 when the request is good, else the HTTP status to answer with and a
// one-line reason.
func CheckClientHandshake(r *http.Request) (status int, reason string) {
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return http.StatusBadRequest, "websocket upgrade needs HTTP/1.1"
	}
	versions := r.Header.Values("Sec-WebSocket-Version")
	if len(versions) != 1 || strings.TrimSpace(versions[0]) != "13" {
		return http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version: want 13"
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return http.StatusBadRequest, "missing or repeated Sec-WebSocket-Key header"
	}
	if !ValidKey(keys[0]) {
		return http.StatusBadRequest, "malformed Sec-WebSocket-Key: want 16 bytes in base64"
	}
	return 0, ""
}

// ValidKey reports whether key is 16 bytes in base64 (RFC 6455 4.1).
func ValidKey(key string) bool {
	key = strings.TrimSpace(key)
	if len(key) != 24 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}

// AcceptFor computes Sec-WebSocket-Accept for key (RFC 6455 4.2.2).
func AcceptFor(key string) string {
	h := sha1.New()
	h.Write([]byte(strings.TrimSpace(key)))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// rfcNames maps the Go-canonical spelling of the WebSocket fields to RFC
// 6455's, which reverse_proxy sends (caddy PR #6621): some backends and
// clients compare field names case-sensitively.
var rfcNames = map[string]string{
	"Sec-Websocket-Accept":     "Sec-WebSocket-Accept",
	"Sec-Websocket-Extensions": "Sec-WebSocket-Extensions",
	"Sec-Websocket-Key":        "Sec-WebSocket-Key",
	"Sec-Websocket-Protocol":   "Sec-WebSocket-Protocol",
	"Sec-Websocket-Version":    "Sec-WebSocket-Version",
}

// UseRFCNames renames the WebSocket fields of h to RFC 6455's spelling,
// as reverse_proxy does on both legs. Call it last: http.Header's methods
// no longer find the renamed fields.
func UseRFCNames(h http.Header) {
	for k, rk := range rfcNames {
		if v, ok := h[k]; ok {
			delete(h, k)
			h[rk] = append(h[rk], v...)
		}
	}
}

// hopHeaders are removed when a request or response crosses the relay
// (RFC 9110 7.6.1); Connection and Upgrade are set again for the upgrade.
// Alt-Svc too, as reverse_proxy does: the backend's alternative services
// are not the site's, and Caddy sets the site's own (HTTP/3).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Alt-Svc",
}

// RemoveHopHeaders deletes hop-by-hop headers, including those that the
// Connection header names.
func RemoveHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// AllowedRSV returns the RSV bits that the extensions the backend accepted
// define: RSV1 for permessage-deflate (RFC 7692 6); all three for an
// extension the relay does not know, which then owns their meaning.
func AllowedRSV(extensions []string) byte {
	var rsv byte
	for _, v := range extensions {
		for _, ext := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(ext, ";")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "":
			case "permessage-deflate":
				rsv |= 0x4
			default:
				rsv |= 0x7
			}
		}
	}
	return rsv
}
