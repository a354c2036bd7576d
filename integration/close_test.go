package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	gws "github.com/gorilla/websocket"
)

// TestClientClose wants a client's close frame to reach the backend with
// its code and reason, the close handshake to complete, and one log line.
func TestClientClose(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			path := "/echo/" + sc.name
			conn, _ := f.dialCoder(t, sc.secure, path, nil)
			bc := f.App.accept(t, path)
			for _, m := range []string{"a", "bb", "ccc"} {
				echoOnce(t, conn, m)
			}
			if err := conn.Close(4001, "bye"); err != nil {
				t.Errorf("client close handshake: %v", err)
			}
			rec := bc.waitClosed(t, 5*time.Second)
			if rec.Code != 4001 || rec.Reason != "bye" {
				t.Errorf("backend got close %d %q (%v), want 4001 %q", rec.Code, rec.Reason, rec.Err, "bye")
			}
		})
	}
	for _, e := range f.Caddy.WaitConnClosed(2) {
		checkConnLog(t, e, connLogWant{
			ClosedBy: "client", Cause: "client closed", CloseCode: 4001, Reason: "bye",
			MinC2BMsg: 3, MinB2CMsg: 3, MinC2B: 6, MinB2C: 6,
		})
		if e.Str("upstream") == "" || e.Str("remote_addr") == "" {
			t.Errorf("upstream and remote_addr must be set: %s", e)
		}
	}
}

// TestBackendClose wants a backend's close frame to reach the client with
// its code and reason.
func TestBackendClose(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			path := "/push/" + sc.name
			conn, _ := f.dialCoder(t, sc.secure, path, nil)
			bc := f.App.accept(t, path)
			if err := bc.Send(gws.TextMessage, []byte("before close")); err != nil {
				t.Fatal(err)
			}
			if err := bc.CloseWith(4002, "later"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, got, err := conn.Read(ctx)
			if err != nil || string(got) != "before close" {
				t.Fatalf("message before the close: %q, %v", got, err)
			}
			_, _, err = conn.Read(ctx)
			var ce cws.CloseError
			if !errors.As(err, &ce) || ce.Code != 4002 || ce.Reason != "later" {
				t.Fatalf("client read after the backend's close: %v, want close 4002 %q", err, "later")
			}
			bc.waitClosed(t, 5*time.Second)
		})
	}
	for _, e := range f.Caddy.WaitConnClosed(2) {
		checkConnLog(t, e, connLogWant{ClosedBy: "backend", CloseCode: 4002, Reason: "later", MinB2CMsg: 1, MinB2C: len("before close")})
	}
}

// TestBackendKilled kills the backend's TCP connection between frames,
// with a FIN and with a RST: the client must get close 1014.
func TestBackendKilled(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	n := 0
	for _, sc := range schemes {
		for _, rst := range []bool{false, true} {
			name := sc.name + "/fin"
			if rst {
				name = sc.name + "/rst"
			}
			n++
			t.Run(name, func(t *testing.T) {
				path := "/echo/" + name
				conn, _ := f.dialCoder(t, sc.secure, path, nil)
				bc := f.App.accept(t, path)
				echoOnce(t, conn, "one")
				bc.Kill(rst)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, _, err := conn.Read(ctx)
				if code := cws.CloseStatus(err); code != cws.StatusBadGateway {
					t.Fatalf("client read after the backend died: %v (status %d), want close 1014", err, code)
				}
			})
		}
	}
	for _, e := range f.Caddy.WaitConnClosed(n) {
		checkConnLog(t, e, connLogWant{CloseCode: 1014, Cause: "backend"})
		if by := e.Str("closed_by"); by != "backend" && by != "relay" {
			t.Errorf("closed_by = %q for a dead backend, want backend or relay: %s", by, e)
		}
	}
}

// TestOneLogLinePerConnection opens several connections that end in
// different ways and wants exactly one "connection closed" line for each.
func TestOneLogLinePerConnection(t *testing.T) {
	t.Parallel()
	f := startRelay(t, appOpts{}, relayConf{})
	const conns = 5
	for i := 0; i < conns; i++ {
		conn, _ := f.dialCoder(t, i%2 == 1, "/echo", nil)
		bc := f.App.accept(t, "/echo")
		echoOnce(t, conn, "x")
		switch i % 3 {
		case 0:
			conn.Close(cws.StatusNormalClosure, "")
		case 1:
			bc.CloseWith(int(cws.StatusGoingAway), "")
			conn.Read(context.Background())
		case 2:
			conn.CloseNow()
		}
		bc.waitClosed(t, 10*time.Second)
	}
	f.Caddy.WaitConnClosed(conns)
	// Anything late would show up now.
	time.Sleep(500 * time.Millisecond)
	if got := f.Caddy.ConnClosedLogs(); len(got) != conns {
		t.Errorf("%d connections logged %d connection closed lines:\n%s", conns, len(got), f.Caddy.relayLines())
	}
	for _, e := range f.Caddy.ConnClosedLogs() {
		checkConnLog(t, e, connLogWant{})
	}
}
