package relayconfig

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Upstream is one parsed backend address.
type Upstream struct {
	// Raw is the address as configured, used in logs.
	Raw string
	// Network is "tcp", or "unix" for a Unix socket.
	Network string
	// Addr is host:port to dial, or the socket's path.
	Addr string
	// TLS is true for wss:// upstreams.
	TLS bool
	// Path is prefixed to the request path ("" for none).
	Path string
}

// Dial is the upstream's address as reverse_proxy's Dial writes it:
// "host:port", or "unix/<path>" for a Unix socket.
func (u Upstream) Dial() string {
	if u.Network == "unix" {
		return "unix/" + u.Addr
	}
	return u.Addr
}

// ParseUpstream parses "host:port", "ws://host:port[/path]",
// "wss://host:port[/path]" or "unix/<socket path>" (Caddy's form, so
// "unix//run/app.sock" for an absolute path). A ws:// or wss:// address
// without a port takes 80 or 443.
func ParseUpstream(s string) (Upstream, error) {
	u := Upstream{Raw: s, Network: "tcp"}
	if s == "" {
		return u, fmt.Errorf("empty upstream address")
	}
	if path, ok := strings.CutPrefix(s, "unix/"); ok {
		if path == "" {
			return u, fmt.Errorf("upstream %q: missing socket path after unix/", s)
		}
		u.Network, u.Addr = "unix", path
		return u, nil
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil || port == "" {
			return u, fmt.Errorf("upstream %q: want host:port, ws://host:port, wss://host:port or unix//path", s)
		}
		if err := checkPort(s, port); err != nil {
			return u, err
		}
		u.Addr = net.JoinHostPort(host, port)
		return u, nil
	}
	pu, err := url.Parse(s)
	if err != nil {
		return u, fmt.Errorf("upstream %q: %w", s, err)
	}
	switch pu.Scheme {
	case "ws":
	case "wss":
		u.TLS = true
	default:
		return u, fmt.Errorf("upstream %q: scheme must be ws or wss, not %q", s, pu.Scheme)
	}
	if pu.Host == "" || pu.Hostname() == "" {
		return u, fmt.Errorf("upstream %q: missing host", s)
	}
	if pu.RawQuery != "" || pu.Fragment != "" || pu.User != nil {
		return u, fmt.Errorf("upstream %q: a query, fragment or user info is not allowed", s)
	}
	port := pu.Port()
	if port == "" {
		port = "80"
		if u.TLS {
			port = "443"
		}
	} else if err := checkPort(s, port); err != nil {
		return u, err
	}
	u.Addr = net.JoinHostPort(pu.Hostname(), port)
	u.Path = strings.TrimSuffix(pu.EscapedPath(), "/")
	return u, nil
}

// checkPort rejects a port that is not a number from 1 to 65535 (a path
// or query after host:port without a scheme lands in the port).
func checkPort(upstream, port string) error {
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("upstream %q: port %q is not a number from 1 to 65535 (a path needs ws:// or wss://)", upstream, port)
	}
	return nil
}
