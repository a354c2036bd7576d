package relayconfig

import (
	"fmt"
	"net/http"
	"strings"
)

// HeaderOps change the headers of the upgrade request sent to the
// backend: Delete first, then Set (replacing every value), then Add.
// Field names are case-insensitive; "Host" is the request's host, which
// can only be set.
// Values may hold Caddy placeholders, including the upstream's
// {http.reverse_proxy.upstream.hostport} (Caddyfile: {upstream_hostport}),
// .host and .port, as reverse_proxy sets them.
type HeaderOps struct {
	Delete []string            `json:"delete,omitempty"`
	Set    map[string]string   `json:"set,omitempty"`
	Add    map[string][]string `json:"add,omitempty"`
}

// fixedHeaders are the fields the upgrade itself needs, which header_up
// may not change.
var fixedHeaders = []string{
	"Connection", "Upgrade", "Sec-Websocket-Key", "Sec-Websocket-Version",
	"Content-Length", "Transfer-Encoding",
}

// CheckHeaderField reports why header_up cannot change name with op
// ('-' delete, '+' add, 0 set), or nil when it can. Host can only be set.
func CheckHeaderField(name string, op byte) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	}) {
		return fmt.Errorf("%q is not a header field name", name)
	}
	canon := http.CanonicalHeaderKey(name)
	if canon == "Host" && op != 0 {
		return fmt.Errorf("Host can only be set, not added or deleted")
	}
	for _, f := range fixedHeaders {
		if canon == f {
			return fmt.Errorf("%s is set by the upgrade itself and cannot be changed", canon)
		}
	}
	return nil
}

// Validate checks every field name of ops (nil is valid).
func (ops *HeaderOps) Validate() error {
	if ops == nil {
		return nil
	}
	for _, k := range ops.Delete {
		if err := CheckHeaderField(k, '-'); err != nil {
			return err
		}
	}
	for k := range ops.Set {
		if err := CheckHeaderField(k, 0); err != nil {
			return err
		}
	}
	for k := range ops.Add {
		if err := CheckHeaderField(k, '+'); err != nil {
			return err
		}
	}
	return nil
}
