package integration

import (
	"fmt"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

// TestServerTimeoutsSpareRelays: the server's timeouts (read_body, write,
// read_header, and the idle ones, read_body_idle and write_idle, 1m by
// default) bound requests, not the relayed connections they became:
// a relayed connection lives on past them, over ws and wss, both idle
// and busy. (net/http lifts the request's deadlines as the relay takes
// the connection over, and the relay sets its own from then on.)
func TestServerTimeoutsSpareRelays(t *testing.T) {
	t.Parallel()
	const limit = time.Second
	f := startRelay(t, appOpts{}, relayConf{
		Options: []string{"ping_interval 10s", "pong_timeout 10s"},
		Servers: fmt.Sprintf("\ttimeouts {\n\t\tread_body %s\n\t\tread_header %s\n\t\twrite %s\n\t\tread_body_idle %s\n\t\twrite_idle %s\n\t}", limit, limit, limit, limit, limit),
	})
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("secure=%v", secure), func(t *testing.T) {
			t.Parallel()
			idle, _ := f.dialCoder(t, secure, "/echo/idle", nil)
			busy, _ := f.dialCoder(t, secure, "/echo/busy", nil)
			for i := 0; i < 15; i++ { // 3 s: three times the timeouts
				echoOnce(t, busy, fmt.Sprintf("busy %d", i))
				time.Sleep(200 * time.Millisecond)
			}
			echoOnce(t, idle, "after 3 s idle")
			idle.Close(cws.StatusNormalClosure, "")
			busy.Close(cws.StatusNormalClosure, "")
		})
	}
}
