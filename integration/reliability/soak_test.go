package reliability

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// The soak's size and length: 10 s with 200 connections per leg in `go
// test`, 10 minutes with 1,000 in scripts/soak.sh (`make soak`), which
// sets the variables.
var (
	soakDuration = flag.Duration("soak.duration", envDuration("WSRELAY_SOAK_DURATION", 10*time.Second),
		"how long the soak sends (env WSRELAY_SOAK_DURATION)")
	soakConns = flag.Int("soak.conns", envInt("WSRELAY_SOAK_CONNS", 200),
		"how many connections the soak holds on each leg (env WSRELAY_SOAK_CONNS)")
	soakPace = flag.Duration("soak.pace", envDuration("WSRELAY_SOAK_PACE", 0),
		"mean pause between two messages of one sender (env WSRELAY_SOAK_PACE); default 400ms per 100 connections, or longer as measured on this machine (see paceFor)")
	soakLegs = flag.String("soak.legs", envString("WSRELAY_SOAK_LEGS", "ws,wss"),
		"the client legs the soak runs over, at once: ws, wss or ws,wss (env WSRELAY_SOAK_LEGS)")
)

func envString(name, def string) string {
	if s := os.Getenv(name); s != "" {
		return s
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// soak is one soak run.
type soak struct {
	leg   string // the client leg: "ws" (plain TCP) or "wss"
	addr  string // caddy's address for that leg
	conns []*soakConn
	tls   *tls.Config // nil for ws
}

// url is the URL of path through the relay, for the client leg.
func (s *soak) url(path string) string {
	_, port, _ := net.SplitHostPort(s.addr)
	return fmt.Sprintf("%s://localhost:%s%s", s.leg, port, path)
}

// TestSoak holds many connections through the relay for a while, each
// carrying random messages both ways at once (0 B to 1 MiB, text and
// binary, fragmented by raw frames or by gorilla's NextWriter, with pings
// from both peers between them and relay pings when a client falls
// silent), checks every message byte for byte and in order at the far
// end, and then that caddy's goroutines, descriptors and heap came back.
//
// It does so once per client leg, in parallel subtests, each with its own
// caddy, backend and checks: "ws" (plain TCP, where idle relays move onto
// the engine's event loops and back to goroutines for whatever the loops
// do not relay: close frames, frames larger than a read, writes that
// would block) and "wss" (TLS, which the loops do not serve). -soak.legs
// (WSRELAY_SOAK_LEGS) picks the legs, as does -run 'TestSoak/^ws$'.
func TestSoak(t *testing.T) {
	t.Parallel()
	legs := strings.Split(*soakLegs, ",")
	for i, leg := range legs {
		if legs[i] = strings.TrimSpace(leg); legs[i] != "ws" && legs[i] != "wss" {
			t.Fatalf("soak leg %q (-soak.legs, WSRELAY_SOAK_LEGS %q): want ws, wss or both, comma-separated", legs[i], *soakLegs)
		}
	}
	// The legs measure the machine (paceFor) at the same time, as they
	// will share it: each waits for the others' warm-ups to end first.
	// Each counts itself in before t.Parallel, so before any of them goes
	// on, and a leg that -run leaves out is not waited for.
	var warmed sync.WaitGroup
	for _, leg := range legs {
		t.Run(leg, func(t *testing.T) {
			warmed.Add(1)
			t.Parallel()
			runSoak(t, leg, &warmed)
		})
	}
}

// runSoak is the soak over one client leg, "ws" or "wss". It marks warmed
// done once its warm-up has ended or failed.
func runSoak(t *testing.T, leg string, warmed *sync.WaitGroup) {
	var once sync.Once
	warmDone := func() { once.Do(warmed.Done) }
	defer warmDone()
	d, n := *soakDuration, *soakConns
	s := &soak{leg: leg}
	backend := httptest.NewServer(http.HandlerFunc(s.serveBackend))
	t.Cleanup(backend.Close)
	caddy := rt.NewCaddy(t, rt.Options{Metrics: true})
	caddy.Start(func(c *rt.Caddy) string {
		relay := relayBlock("", backend.Listener.Addr().String(), []string{"ping_interval 1s", "pong_timeout 10s"})
		if leg == "ws" {
			return fmt.Sprintf("http://:%d {\n%s}\n", c.HTTPPort, relay)
		}
		return fmt.Sprintf("https://localhost:%d {\n\ttls internal\n%s}\n", c.HTTPSPort, relay)
	})
	s.addr = caddy.HTTPAddr()
	if leg == "wss" {
		s.addr, s.tls = caddy.HTTPSAddr(), caddy.TLSConfig()
	}
	// The warm-up holds as many connections as the soak will, all at
	// once: what caddy keeps once it has served that many (the sizes its
	// maps and pools grew to, TLS state, event loops, metrics) is then in
	// the starting figures, and what the soak leaves behind is a leak.
	warm := s.dialEchoes(t, "warm-up", 0, n)
	warmDone()
	pace, probes := *soakPace, 0
	if pace == 0 {
		warmed.Wait()
		pace, probes = s.paceFor(t, n)
	}
	closeAll(warm)
	// The relay's line for each warm-up and calibration connection; the
	// soak's own come after these.
	warmLines := n + probes
	caddy.WaitLogs(warmLines, 30*time.Second, rt.LogEntry.IsConnClosed)
	before := baseline(t, caddy)
	saveProfiles(t, caddy, leg, "before")
	end := time.Now().Add(d)
	for i := 0; i < n; i++ {
		s.conns = append(s.conns, &soakConn{
			id: i, raw: i%2 == 1, bursty: i%10 == 3,
			up: stream{seed: rand.Uint64()}, down: stream{seed: rand.Uint64()},
			end: end, pace: pace,
			cPings: newPings("c-ping-"), bPings: newPings("b-ping-"), bDone: make(chan struct{}),
		})
		s.conns[i].cRecv.stream = s.conns[i].down
		s.conns[i].bRecv.stream = s.conns[i].up
	}
	loops := s.sampleLoops(caddy)
	var wg sync.WaitGroup
	for i, sc := range s.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * min(d/4, 5*time.Second) / time.Duration(n)) // spread the handshakes
			s.runClient(sc, sourceIPs[i%len(sourceIPs)])
			select {
			case <-sc.bDone:
			case <-time.After(time.Minute):
				sc.fail("the backend end did not finish")
			}
		}()
	}
	wg.Wait()
	s.check(t, caddy, d)
	s.checkLoops(t, loops())
	lines := caddy.WaitLogs(warmLines+n, 30*time.Second, rt.LogEntry.IsConnClosed)
	lines = lines[min(warmLines, len(lines)):] // those after the warm-up's and calibration's
	var relayPings, relayPongs float64
	for _, e := range lines {
		relayPings += e.Num("pings_sent")
		relayPongs += e.Num("pongs_received")
		if e.Num("close_code") != 1000 || e.Str("closed_by") != "client" {
			t.Errorf("connection from %s ended with %v by %q at %s after %.3f s (%s; %v relay pings, %v pongs to them; client socket: %v bytes unread by the relay, %v unacknowledged, %v held by crypto/tls), want 1000 by the client",
				e.Str("remote_addr"), e.Num("close_code"), e.Str("closed_by"),
				time.Unix(0, int64(e.Num("ts")*1e9)).UTC().Format("15:04:05.000"), e.Num("duration"), e.Str("cause"),
				e.Num("pings_sent"), e.Num("pongs_received"), e["client_unread_bytes"], e["client_unacked_bytes"], e["client_tls_held_bytes"])
		}
	}
	if len(lines) != n {
		t.Errorf("%d \"connection closed\" lines, want %d", len(lines), n)
	}
	t.Logf("relay pings sent %v, pongs to them received %v", relayPings, relayPongs)
	wait := 30 * time.Second
	if d >= time.Minute {
		wait = time.Minute
	}
	after := waitSettled(t, caddy, before, 5, 3, 0.10, goroutineSlack(n), wait)
	saveProfiles(t, caddy, leg, "after")
	t.Logf("caddy before: %v", before)
	t.Logf("caddy after:  %v", after)
	if m, err := caddy.Metrics(); err != nil {
		t.Errorf("reading caddy's metrics: %v", err)
	} else {
		if held, ok := m["caddy_websocket_relay_read_buffers"]; !ok || held != 0 {
			t.Errorf("read buffers held with every connection closed: %v (reported: %v), want 0", held, ok)
		}
		if on, ok := m[loopGauge]; !ok || on != 0 {
			t.Errorf("relays on the event loops with every connection closed: %v (reported: %v), want 0", on, ok)
		}
	}
	caddy.CheckNoPanic()
}

// dialEchoes dials n connections through the relay to the backend's echo
// (the i-th from source address i+first), each echoing one message.
func (s *soak) dialEchoes(t *testing.T, what string, first, n int) []*gws.Conn {
	t.Helper()
	conns := make([]*gws.Conn, n)
	errs := inParallel(n, func(i int) error {
		d := gws.Dialer{TLSClientConfig: s.tls, HandshakeTimeout: 30 * time.Second,
			NetDialContext: dialFrom(sourceIPs[(first+i)%len(sourceIPs)], s.addr)}
		conn, _, err := d.Dial(s.url("/warm"), nil)
		if err == nil {
			err = conn.WriteMessage(gws.TextMessage, []byte("warm"))
		}
		if err == nil {
			_, _, err = conn.ReadMessage()
		}
		if err != nil {
			return fmt.Errorf("%s connection %d: %w", what, i, err)
		}
		conns[i] = conn
		return nil
	})
	for _, err := range errs {
		t.Fatal(err)
	}
	return conns
}

// closeAll sends each connection's close frame and closes it once the
// relay's close frame (or an error) comes back, without waiting.
func closeAll(conns []*gws.Conn) {
	for _, conn := range conns {
		_ = conn.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(1000, ""), time.Now().Add(5*time.Second))
		go func() {
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, _, _ = conn.ReadMessage()
			conn.Close()
		}()
	}
}

// The soak's traffic. Each sender pauses a random time between two
// messages, with mean pace. Nominally that is 400 ms per 100 connections,
// the same traffic in all whatever the connection count: about 1.5 MB/s
// each way per leg. But the soak's clients and backend share the machine
// with caddy, under -race, for both legs at once and beside other tests,
// and a starved client cannot answer the relay's pings in time and is
// rightly cut, which is not what the soak is about. So paceFor measures
// what this machine carries first and makes the pace longer when the
// nominal traffic would be more than soakShare of it.
//
// An echoed message costs the test process about one and a half soak
// messages (made, relayed twice, echoed and checked, against made,
// relayed once and checked), so soakShare 0.4 keeps the soak's own
// traffic near a quarter of what the machine carries. On a machine where
// the nominal pace starved clients while they connected (ping timeouts),
// the calibration measured ~390 echoed messages/s per leg, both legs at
// once, which gives a pace of ~12.8 s per 1,000 connections: a third of
// the nominal traffic, which passed there.
const (
	nominalPace = 400 * time.Millisecond // per 100 connections
	soakShare   = 0.4
	calibConns  = 32
	calibTime   = 3 * time.Second
)

// paceFor returns the soak's pace for n connections on this machine, and
// how many connections it opened (and closed) to measure it. It measures
// how many soak messages a second (the soak's sizes, up to 1 MiB) go
// through the relay to the backend's echo and back, each made and checked
// as the soak does, on calibConns new connections at full speed for
// calibTime (not on the warm-up's, which answer no relay ping and may
// have been idle past pong_timeout); the soak then sends at most
// soakShare of that, counting both directions.
func (s *soak) paceFor(t *testing.T, n int) (time.Duration, int) {
	t.Helper()
	pace := nominalPace * time.Duration((n+99)/100)
	conns := s.dialEchoes(t, "calibration", n, calibConns)
	defer closeAll(conns)
	var msgs atomic.Int64
	start := time.Now()
	end := start.Add(calibTime)
	errs := inParallel(len(conns), func(i int) error {
		conn, st := conns[i], stream{seed: rand.Uint64()}
		for seq := uint64(0); time.Now().Before(end); seq++ {
			text, p := st.message(seq)
			typ := gws.BinaryMessage
			if text {
				typ = gws.TextMessage
			}
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			if err := conn.WriteMessage(typ, p); err != nil {
				return fmt.Errorf("calibration, connection %d: sending message %d: %w", i, seq, err)
			}
			gotTyp, got, err := conn.ReadMessage()
			if err != nil {
				return fmt.Errorf("calibration, connection %d: reading message %d: %w", i, seq, err)
			}
			if err := st.verify(seq, gotTyp == gws.TextMessage, got); err != nil {
				return fmt.Errorf("calibration, connection %d: %w", i, err)
			}
			msgs.Add(1)
		}
		return nil
	})
	for _, err := range errs {
		t.Fatal(err)
	}
	if msgs.Load() == 0 {
		t.Fatalf("calibration: no message came back in %v", time.Since(start))
	}
	rate := float64(msgs.Load()) / time.Since(start).Seconds()
	// The soak sends n/pace messages a second each way.
	floor := time.Duration(float64(2*n) / (soakShare * rate) * float64(time.Second))
	t.Logf("calibration: %.0f echoed messages/s on %d connections; pace %v for %d connections (nominal %v)",
		rate, len(conns), max(pace, floor).Round(time.Millisecond), n, pace)
	return max(pace, floor), len(conns)
}

// check verifies every connection's two streams, pings and close, and
// logs the totals.
func (s *soak) check(t *testing.T, caddy *rt.Caddy, d time.Duration) {
	t.Helper()
	var upMsgs, downMsgs, upBytes, downBytes, pingsC, pingsB, relayPings int64
	failed := 0
	for _, sc := range s.conns {
		kind := map[bool]string{true: "raw", false: "gorilla"}[sc.raw]
		problems := append([]string(nil), sc.errs...)
		for _, r := range []struct {
			who  string
			rcv  *receiver
			sent int64
		}{{"backend", &sc.bRecv, sc.cSent}, {"client", &sc.cRecv, sc.bSent}} {
			if r.rcv.err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", r.who, r.rcv.err))
			}
			if !r.rcv.ended || int64(r.rcv.next)+1 != r.sent {
				problems = append(problems, fmt.Sprintf("%s verified %d messages (end seen %v) of %d sent", r.who, r.rcv.next, r.rcv.ended, r.sent-1))
			}
		}
		for _, p := range []struct {
			who      string
			p        *pings
			answered int
		}{{"client", sc.cPings, sc.clientPngs}, {"backend", sc.bPings, sc.backPings}} {
			if p.p.pongs != p.p.n || p.p.strays > 0 || p.answered != p.p.n {
				problems = append(problems, fmt.Sprintf("%s sent %d pings, the peer answered %d, %d pongs came back, %d strays",
					p.who, p.p.n, p.answered, p.p.pongs, p.p.strays))
			}
		}
		if sc.bClose != 1000 || sc.cClose != 1000 {
			problems = append(problems, fmt.Sprintf("close codes: backend got %d, client got %d, want 1000", sc.bClose, sc.cClose))
		}
		if len(problems) > 0 {
			if failed++; failed <= 10 {
				t.Errorf("connection %d (%s client from %s, which %s): %v",
					sc.id, kind, sc.local, sc.relayPingsSeen(), problems)
			}
		}
		upMsgs += int64(sc.bRecv.next)
		downMsgs += int64(sc.cRecv.next)
		upBytes += sc.bRecv.bytes
		downBytes += sc.cRecv.bytes
		pingsC += int64(sc.cPings.n)
		pingsB += int64(sc.bPings.n)
		relayPings += int64(sc.relayPings)
	}
	if failed > 0 {
		t.Errorf("%d of %d connections failed", failed, len(s.conns))
	}
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	t.Logf("soak: %d %s connections for %v; verified byte for byte and in order: client->backend %d messages (%.1f MiB), backend->client %d messages (%.1f MiB); pings: %d from clients, %d from the backend, %d from the relay, all answered",
		len(s.conns), s.leg, d, upMsgs, mib(upBytes), downMsgs, mib(downBytes), pingsC, pingsB, relayPings)
	if relayPings == 0 {
		t.Errorf("no relay ping reached a client: the bursty clients should have drawn some")
	}
}

// loopGauge counts the relays on the engine's event loops now.
const loopGauge = "caddy_websocket_relay_event_loop_connections"

// loopSamples are the readings of loopGauge during a soak.
type loopSamples struct {
	n, on, errs int     // readings, those with some relay on a loop, failed scrapes
	peak        float64 // the most relays on the loops at once
	sum         float64
}

// sampleLoops reads loopGauge every 500 ms until the returned function is
// called, which returns the readings.
func (s *soak) sampleLoops(caddy *rt.Caddy) func() loopSamples {
	stop, done := make(chan struct{}), make(chan struct{})
	var ls loopSamples
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			m, err := caddy.Metrics()
			if err != nil {
				ls.errs++
				continue
			}
			v := m[loopGauge]
			ls.n++
			ls.sum += v
			ls.peak = max(ls.peak, v)
			if v > 0 {
				ls.on++
			}
		}
	}()
	return func() loopSamples {
		close(stop)
		<-done
		return ls
	}
}

// checkLoops logs how much of the soak the event loops served and, on the
// ws leg (plain TCP, which they serve), that they served some of it: else
// the soak did not exercise them.
func (s *soak) checkLoops(t *testing.T, ls loopSamples) {
	t.Helper()
	mean := 0.0
	if ls.n > 0 {
		mean = ls.sum / float64(ls.n)
	}
	t.Logf("event loops: %.1f of the %d relays on them on average, %v at most, some in %d of %d readings (%d failed)",
		mean, len(s.conns), ls.peak, ls.on, ls.n, ls.errs)
	if s.leg == "ws" && ls.peak == 0 {
		t.Errorf("no relay was on an event loop in %d readings: the ws leg did not exercise them", ls.n)
	}
}

// goroutineSlack is what the heap goal may keep after a soak of n
// connections beyond the warm-up's figure without a leak: the Go runtime
// never frees a goroutine's descriptor (runtime.g, 480 B under -race) or
// a thread's, it keeps them for reuse. The warm-up's connections sit idle
// (no goroutine of the relay's), but at the soak's busiest moments caddy
// runs more goroutines at once than it ever did before, and their
// descriptors stay in the heap. A 6-minute wss soak's heap profiles
// (WSRELAY_SOAK_PROFILES, GODEBUG=memprofilerate=8192) showed that: 527
// KiB more in use after it, 494 KiB of which goroutine descriptors
// (runtime.malg, from go statements and from time.goFunc for timers); the
// rest, tens of KiB up and down, was the runtime's poll descriptors'
// timers and net/http's map of connections. One more descriptor per
// connection is allowed, counted twice since the goal is about twice the
// live heap.
func goroutineSlack(n int) float64 { return float64(n) * 2 * 512 }

// saveProfiles writes caddy's heap and goroutine profiles (after a
// collection) to $WSRELAY_SOAK_PROFILES/<leg>-<when>-{heap,goroutine}.pb.gz
// when that is set: `go tool pprof -diff_base ws-before-heap.pb.gz
// ws-after-heap.pb.gz` then shows what a soak left behind.
func saveProfiles(t *testing.T, caddy *rt.Caddy, leg, when string) {
	t.Helper()
	dir := os.Getenv("WSRELAY_SOAK_PROFILES")
	if dir == "" {
		return
	}
	for _, p := range []struct{ name, query string }{{"heap", "?gc=1"}, {"goroutine", ""}} {
		name := p.name
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/%s%s", caddy.AdminPort, name, p.query))
		if err != nil {
			t.Errorf("%s profile: %v", name, err)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s", resp.Status)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s-%s.pb.gz", leg, when, name)), b, 0o644)
		}
		if err != nil {
			t.Errorf("%s profile: %v", name, err)
		}
	}
}
