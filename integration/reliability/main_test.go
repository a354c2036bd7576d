package reliability

import (
	"fmt"
	"os"
	"strings"
	"testing"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

func TestMain(m *testing.M) { os.Exit(rt.Main(m)) }

// relayOpts describe the caddy of one test.
type relayOpts struct {
	caddy rt.Options
	// options are websocket_relay subdirective lines.
	options []string
}

// fixture is a raw backend behind a caddy that relays upgrades to it. A
// request under /refused goes to a port where nothing listens.
type fixture struct {
	caddy   *rt.Caddy
	backend *rt.Backend
}

// relayBlock renders one websocket_relay directive.
func relayBlock(matcher, upstream string, options []string) string {
	if matcher != "" {
		matcher += " "
	}
	return fmt.Sprintf("\twebsocket_relay %s%s {\n\t\t%s\n\t}\n", matcher, upstream, strings.Join(options, "\n\t\t"))
}

// startRelay starts a raw backend and a caddy in front of it.
func startRelay(t *testing.T, o relayOpts) *fixture {
	t.Helper()
	b := rt.NewBackend(t)
	c := rt.NewCaddy(t, o.caddy)
	refused := fmt.Sprintf("127.0.0.1:%d", rt.FreePort(t))
	body := relayBlock("/refused*", refused, o.options) + relayBlock("", b.Addr, o.options)
	c.Start(func(c *rt.Caddy) string { return fmt.Sprintf("http://:%d {\n%s}\n", c.HTTPPort, body) })
	return &fixture{caddy: c, backend: b}
}

// dial opens a raw client connection to path through the relay.
func (f *fixture) dial(t *testing.T, path string, o rt.DialOptions) *rt.Client {
	t.Helper()
	c, err := rt.Dial(f.caddy.HTTPAddr(), path, o)
	if err != nil {
		t.Fatalf("dialing %s through the relay: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sourceIPs spread the many connections of a test over several loopback
// addresses, so that no one source runs out of ephemeral ports.
var sourceIPs = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
