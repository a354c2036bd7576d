package netlab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// browserPage opens ws:// to its own origin through the relay, says hello
// and records every event in window.state, with Date.now() times.
const browserPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>netlab</title></head><body>
<script>
window.state = {opened: 0, msgs: [], closed: null, errors: []};
const ws = new WebSocket("ws://" + location.host + "/ws/browser");
ws.onopen = () => { state.opened = Date.now(); ws.send("hello from chromium"); };
ws.onmessage = (ev) => { state.msgs.push({data: String(ev.data), at: Date.now()}); };
ws.onclose = (ev) => { state.closed = {code: ev.code, reason: ev.reason, wasClean: ev.wasClean, at: Date.now()}; };
ws.onerror = () => { state.errors.push(Date.now()); };
</script>
</body></html>
`

// pageState mirrors window.state of browserPage.
type pageState struct {
	Opened int64 `json:"opened"`
	Msgs   []struct {
		Data string `json:"data"`
		At   int64  `json:"at"`
	} `json:"msgs"`
	Closed *struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		WasClean bool   `json:"wasClean"`
		At       int64  `json:"at"`
	} `json:"closed"`
	Errors []int64 `json:"errors"`
}

// got returns when the page received data, and whether it did.
func (s pageState) got(data string) (time.Time, bool) {
	for _, m := range s.Msgs {
		if m.Data == data {
			return time.UnixMilli(m.At), true
		}
	}
	return time.Time{}, false
}

// TestBrowserBehindNAT runs headless Chromium, driven through chromedriver,
// in the client namespace behind the forgetful NAT. It loads a page from
// caddy whose script opens ws:// through the relay, idles for 3x the NAT
// timeout and then waits for a message the backend pushes. With relay
// pings every 2 s (Chromium answers them by itself) the message arrives.
// The control has pings off: the push never arrives and the page gets no
// close or error event at all; the browser cannot tell. TCP keepalive is
// off on caddy's listener in both runs; Chromium's own keepalive starts
// after 45 s of idleness, later than anything here.
func TestBrowserBehindNAT(t *testing.T) {
	t.Parallel()
	tools := requireLab(t, "chromium|chromium-browser|google-chrome", "chromedriver")
	for _, tc := range []struct {
		name     string
		relay    []string
		wantPush bool
	}{
		{"pings_2s", relayPings, true},
		{"control_pings_off", relayNoPings, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startStack(t, labOpts{NATTimeout: natTimeout}, caddyOpts{Relay: tc.relay, Servers: noTCPKeepalive, Page: browserPage})
			dir := filepath.Join(s.Dir, "browser")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if b, err := os.ReadFile(filepath.Join(dir, "chromedriver.log")); err == nil && t.Failed() {
					t.Logf("chromedriver.log:\n%s", tail(string(b), 6000))
				}
			})
			b := startRole(t, s.Client, "browser", roleConfig{
				URL:          fmt.Sprintf("http://%s:%d/", serverIP, caddyPort),
				Chromium:     tools[0],
				ChromeDriver: tools[1],
				UserDataDir:  filepath.Join(dir, "profile"),
			})
			b.Wait(90*time.Second, "a loaded page", is("ready"))
			s.Backend.Wait(15*time.Second, "the page's hello", msg("hello from chromium"))
			st := waitPage(t, b, 10*time.Second, "the echo", func(s pageState) bool { _, ok := s.got("hello from chromium"); return ok })
			idleFrom, _ := st.got("hello from chromium")
			time.Sleep(time.Until(idleFrom.Add(3 * natTimeout)))
			s.Backend.Do("send late")
			pushed := time.Now()
			if tc.wantPush {
				st = waitPage(t, b, 5*time.Second, "the late message", func(s pageState) bool { _, ok := s.got("late"); return ok || s.Closed != nil })
				at, ok := st.got("late")
				if !ok || st.Closed != nil || len(st.Errors) > 0 {
					t.Fatalf("page state after the push: %+v", st)
				}
				t.Logf("Chromium: NAT timeout %v, idle %s: the push reached the page %s after it was sent; no close, no error",
					natTimeout, since(idleFrom, pushed), since(pushed, at))
				return
			}
			// The control: watch the page for 6 s (twice NETLAB.md's margin).
			wait := 6 * time.Second
			deadline := time.Now().Add(wait)
			for time.Now().Before(deadline) {
				st = readPage(t, b)
				if _, ok := st.got("late"); ok {
					t.Fatalf("control: the push reached the page although pings were off; the NAT did not forget")
				}
				if st.Closed != nil || len(st.Errors) > 0 {
					t.Fatalf("control: the page got a close or error event (%+v); an expired NAT mapping should leave it silent", st)
				}
				time.Sleep(250 * time.Millisecond)
			}
			t.Logf("control: Chromium: NAT timeout %v, idle %s: %v after the push the page has no message, closed=%v, %d error events: silence",
				natTimeout, since(idleFrom, pushed), since(pushed, time.Now()), st.Closed, len(st.Errors))
		})
	}
}

// readPage asks the browser role for window.state.
func readPage(t *testing.T, b *peer) pageState {
	t.Helper()
	mark := b.Mark()
	b.Do("state")
	ev := b.WaitAfter(mark, 30*time.Second, "window.state", is("state"))
	var st pageState
	if err := json.Unmarshal(ev.State, &st); err != nil {
		t.Fatalf("window.state %s: %v", ev.State, err)
	}
	return st
}

// waitPage polls window.state until cond holds or d passes.
func waitPage(t *testing.T, b *peer, d time.Duration, what string, cond func(pageState) bool) pageState {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := readPage(t, b)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("page: %s not within %v; state %+v", what, d, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
