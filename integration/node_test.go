package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cws "github.com/coder/websocket"
)

// nodeClientResult is the JSON line that node/client.js prints.
type nodeClientResult struct {
	OK          bool     `json:"ok"`
	Echoed      int      `json:"echoed"`
	Pings       int      `json:"pings"`
	CloseCode   int      `json:"closeCode"`
	CloseReason string   `json:"closeReason"`
	Errors      []string `json:"errors"`
}

// TestNodeClient runs Node's ws as the client through the relay to a Go
// echo backend: every echo intact, relay pings seen during a 3.5 s idle
// spell (ping_interval 1s), the connection still open after it, the
// pongs kept from the backend and the close handshake completed.
func TestNodeClient(t *testing.T) {
	t.Parallel()
	node, dir := requireNode(t)
	f := startRelay(t, appOpts{}, relayConf{})
	t.Run("group", func(t *testing.T) { // returns when its parallel subtests are done
		for _, sc := range schemes {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				testNodeClient(t, f, node, dir, sc.secure)
			})
		}
	})
	nodeClientLogs(t, f)
}

// testNodeClient is one connection of TestNodeClient.
func testNodeClient(t *testing.T, f *fixture, node, dir string, secure bool) {
	path := "/echo/node/" + t.Name()
	args := []string{filepath.Join(dir, "client.js"), "--url", f.URL(secure, path), "--idle", "3.5"}
	if secure {
		args = append(args, "--ca", f.Caddy.rootCertPath())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan []byte, 1)
	go func() {
		out, _ := cmd.Output()
		done <- out
	}()
	bc := f.App.accept(t, path)
	out := within(t, done, 60*time.Second, "node client")
	var res nodeClientResult
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil {
		t.Fatalf("node client printed %q (stderr %q): %v", out, stderr.String(), err)
	}
	if !res.OK || res.Echoed != 7 {
		t.Errorf("node client: %+v, want ok with 7 echoes", res)
	}
	if res.Pings < 2 {
		t.Errorf("node client saw %d relay pings in 3.5 s of idleness with ping_interval 1s, want at least 2", res.Pings)
	}
	if res.CloseCode != 1000 {
		t.Errorf("node client's close ended with code %d, want 1000", res.CloseCode)
	}
	rec := bc.waitClosed(t, 5*time.Second)
	if rec.Code != 1000 || rec.Reason != "node done" {
		t.Errorf("backend got close %d %q, want 1000 %q", rec.Code, rec.Reason, "node done")
	}
	bc.noPingsOrPongs(t)
}

// nodeClientLogs checks the relay's lines for TestNodeClient.
func nodeClientLogs(t *testing.T, f *fixture) {
	t.Helper()
	for _, e := range f.Caddy.WaitConnClosed(2) {
		checkConnLog(t, e, connLogWant{ClosedBy: "client", Cause: "client closed", CloseCode: 1000, Reason: "node done",
			MinC2BMsg: 7, MinB2CMsg: 7, MinPings: 2, MinPongs: 2})
	}
}

// nodeEvent is one JSON line of node/server.js.
type nodeEvent struct {
	Event   string            `json:"event"`
	Port    int               `json:"port"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Data    string            `json:"data"`
	Code    int               `json:"code"`
	Reason  string            `json:"reason"`
	Message string            `json:"message"`
}

// startNodeServer runs node/server.js and returns its port and events.
func startNodeServer(t *testing.T) (int, <-chan nodeEvent) {
	t.Helper()
	node, dir := requireNode(t)
	cmd := exec.Command(node, filepath.Join(dir, "server.js"))
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node server: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		waited := make(chan struct{})
		go func() { cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-waited
		}
		if stderr.Len() > 0 {
			t.Logf("node server stderr: %s", stderr.String())
		}
	})
	events := make(chan nodeEvent, 256)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e nodeEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				events <- e
			}
		}
		close(events)
	}()
	e := within(t, events, 15*time.Second, "node server listening")
	if e.Event != "listening" || e.Port == 0 {
		t.Fatalf("node server's first line: %+v", e)
	}
	return e.Port, events
}

// nextEvent waits for the next node server event other than connection.
func nextEvent(t *testing.T, events <-chan nodeEvent, d time.Duration) nodeEvent {
	t.Helper()
	return within(t, events, d, "node server event")
}

// TestNodeBackend runs Node's ws as the backend and a Go client through
// the relay: echoes intact, no relay pong reaching Node during an idle
// spell, and the client's close code and reason delivered.
func TestNodeBackend(t *testing.T) {
	t.Parallel()
	port, events := startNodeServer(t)
	f := startRelay(t, appOpts{}, relayConf{Upstream: fmt.Sprintf("127.0.0.1:%d", port)})
	for _, sc := range schemes {
		conn, _ := f.dialCoder(t, sc.secure, "/node/echo?via=relay", nil)
		e := nextEvent(t, events, 5*time.Second)
		if e.Event != "connection" || e.URL != "/node/echo?via=relay" {
			t.Fatalf("%s: node server event %+v, want a connection to /node/echo?via=relay", sc.name, e)
		}
		if !strings.HasPrefix(e.Headers["x-forwarded-for"], "127.0.0.1") {
			t.Errorf("%s: node backend got X-Forwarded-For %q", sc.name, e.Headers["x-forwarded-for"])
		}
		msgs := readAll(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, n := range []int{0, 125, 126, 65536, 1 << 20} {
			for _, typ := range []cws.MessageType{cws.MessageText, cws.MessageBinary} {
				want := payload(n, typ == cws.MessageText, 5)
				if err := conn.Write(ctx, typ, want); err != nil {
					t.Fatalf("%s: write: %v", sc.name, err)
				}
				m := within(t, msgs, 10*time.Second, "echo from the node backend")
				if m.err != nil || m.typ != typ || !bytes.Equal(m.data, want) {
					t.Fatalf("%s: echo of %v of %d bytes: %v of %d bytes, err %v", sc.name, typ, n, m.typ, len(m.data), m.err)
				}
			}
		}
		// Idle: the relay pings the Go client, which answers; none of it
		// may reach Node.
		time.Sleep(3 * pingInterval)
		if err := conn.Close(4001, "go bye"); err != nil {
			t.Errorf("%s: close handshake: %v", sc.name, err)
		}
		cancel()
		for {
			e := nextEvent(t, events, 5*time.Second)
			if e.Event == "close" {
				if e.Code != 4001 || e.Reason != "go bye" {
					t.Errorf("%s: node backend got close %d %q, want 4001 %q", sc.name, e.Code, e.Reason, "go bye")
				}
				break
			}
			t.Errorf("%s: node backend event %+v during the connection, want none before the close", sc.name, e)
		}
	}
}

// message is one message read by readAll.
type message struct {
	typ  cws.MessageType
	data []byte
	err  error
}

// readAll reads conn in the background until it ends, so that control
// frames are answered while the test waits.
func readAll(conn *cws.Conn) <-chan message {
	ch := make(chan message, 64)
	go func() {
		for {
			typ, data, err := conn.Read(context.Background())
			ch <- message{typ, data, err}
			if err != nil {
				return
			}
		}
	}()
	return ch
}
