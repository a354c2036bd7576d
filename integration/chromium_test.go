package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// chromiumPage opens wss:// to its own origin through the relay, sends a
// text and a binary message and records everything in window.state.
const chromiumPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>websocket_relay</title></head><body>
<script>
window.state = {opened: false, echoes: [], pushed: [], closed: null, errors: []};
const ws = new WebSocket("wss://" + location.host + "/echo/chromium");
window.ws = ws;
ws.binaryType = "arraybuffer";
ws.onopen = () => {
  state.opened = true;
  ws.send("hello from chromium");
  ws.send(new Uint8Array([1, 2, 3, 250]).buffer);
};
ws.onmessage = (ev) => {
  if (typeof ev.data !== "string") {
    state.echoes.push("bin:" + Array.from(new Uint8Array(ev.data)).join(","));
  } else if (ev.data.startsWith("push:")) {
    state.pushed.push(ev.data);
  } else {
    state.echoes.push(ev.data);
  }
};
ws.onclose = (ev) => { state.closed = {code: ev.code, reason: ev.reason, wasClean: ev.wasClean}; };
ws.onerror = () => { state.errors.push("error event"); };
</script>
</body></html>
`

// pageState mirrors window.state of chromiumPage.
type pageState struct {
	Opened bool     `json:"opened"`
	Echoes []string `json:"echoes"`
	Pushed []string `json:"pushed"`
	Closed *struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		WasClean bool   `json:"wasClean"`
	} `json:"closed"`
	Errors []string `json:"errors"`
}

// waitPage polls window.state until cond holds or d passes.
func waitPage(t *testing.T, wd *webDriver, d time.Duration, what string, cond func(pageState) bool) pageState {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var st pageState
		wd.Exec("return window.state;", &st)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("page: %s not reached within %v; state %+v", what, d, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestChromium loads a page over https (tls internal) whose script opens
// wss:// through the relay: messages echo, the connection survives five
// seconds of idleness with ping_interval 1s (Chromium answers the relay's
// pings; the backend sees no pong and no close; the relay logs no ping
// timeout), and a message pushed by the backend afterwards arrives.
func TestChromium(t *testing.T) {
	t.Parallel()
	rt.LookTool(t, "chromium", "chromium-browser", "google-chrome")
	rt.LookTool(t, "chromedriver")
	f := startRelay(t, appOpts{}, relayConf{})
	f.App.SetPage(chromiumPage)
	wd := startChromium(t, "--ignore-certificate-errors-spki-list="+f.Caddy.leafSPKIHash())
	wd.Navigate(f.Caddy.HTTPSURL() + "/page.html")

	st := waitPage(t, wd, 15*time.Second, "two echoes", func(s pageState) bool {
		return len(s.Echoes) >= 2 || s.Closed != nil
	})
	if !slices.Equal(st.Echoes, []string{"hello from chromium", "bin:1,2,3,250"}) {
		t.Fatalf("page echoes %q (state %+v), want the text and the binary message back", st.Echoes, st)
	}
	bc := f.App.accept(t, "/echo/chromium")

	time.Sleep(5 * pingInterval)
	bc.noPingsOrPongs(t)
	select {
	case rec := <-bc.Closed:
		t.Fatalf("the backend connection ended while the browser was idle: %+v", rec)
	default:
	}
	if bad := f.Caddy.Logs(func(e rt.LogEntry) bool {
		return strings.Contains(strings.ToLower(e.String()), "ping timeout")
	}); len(bad) > 0 {
		t.Fatalf("the relay logged a ping timeout while the browser was idle: %s", bad[0])
	}
	if logs := f.Caddy.ConnClosedLogs(); len(logs) > 0 {
		t.Fatalf("the relay closed a connection while the browser was idle:\n%s", f.Caddy.relayLines())
	}

	if err := bc.Send(gws.TextMessage, []byte("push:after idle")); err != nil {
		t.Fatal(err)
	}
	st = waitPage(t, wd, 10*time.Second, "the pushed message", func(s pageState) bool {
		return len(s.Pushed) > 0 || s.Closed != nil
	})
	if !slices.Equal(st.Pushed, []string{"push:after idle"}) || st.Closed != nil {
		t.Fatalf("page state after the push: %+v", st)
	}

	wd.Exec(`window.ws.close(4000, "browser done"); return null;`, nil)
	rec := bc.waitClosed(t, 10*time.Second)
	if rec.Code != 4000 || rec.Reason != "browser done" {
		t.Errorf("backend got close %d %q, want 4000 %q", rec.Code, rec.Reason, "browser done")
	}
	st = waitPage(t, wd, 10*time.Second, "the close event", func(s pageState) bool { return s.Closed != nil })
	if st.Closed.Code != 4000 || !st.Closed.WasClean {
		t.Errorf("page close event %+v, want a clean close with 4000", *st.Closed)
	}
	for _, e := range f.Caddy.WaitConnClosed(1) {
		checkConnLog(t, e, connLogWant{ClosedBy: "client", CloseCode: 4000, Reason: "browser done",
			MinC2BMsg: 2, MinB2CMsg: 3, MinPings: 3, MinPongs: 3})
	}
}
