package netlab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// A role is a peer program that runs inside a namespace: this test binary
// started again with roleEnv naming the role and roleConfigEnv holding its
// roleConfig as JSON. It prints events as JSON lines on stdout, takes
// one-line commands on stdin and ends when stdin closes.
const (
	roleEnv       = "NETLAB_ROLE"
	roleConfigEnv = "NETLAB_ROLE_CONFIG"
)

// roleConfig configures a role.
type roleConfig struct {
	// Listen is the backend's address.
	Listen string `json:"listen,omitempty"`
	// URL is what the client dials or the browser loads.
	URL string `json:"url,omitempty"`
	// KeepAlive is the client socket's TCP keepalive: "off", "" for Go's
	// default (15 s idle), or a duration used as idle time and interval.
	KeepAlive string `json:"keepalive,omitempty"`
	// NoRead makes the client never read after the handshake.
	NoRead bool `json:"no_read,omitempty"`
	// Chromium, ChromeDriver and UserDataDir configure the browser role.
	Chromium     string `json:"chromium,omitempty"`
	ChromeDriver string `json:"chromedriver,omitempty"`
	UserDataDir  string `json:"user_data_dir,omitempty"`
}

// event is one line a role prints.
type event struct {
	Ev    string          `json:"ev"`             // open, msg, ping, closed, stats, state, error, ...
	T     int64           `json:"t"`              // when, in Unix nanoseconds
	Data  string          `json:"data,omitempty"` // message text, path, address
	Code  int             `json:"code,omitempty"` // close code; 1006 for a connection that ended without one
	Err   string          `json:"err,omitempty"`
	N     int64           `json:"n,omitempty"`    // bytes written (backend flood)
	Last  int64           `json:"last,omitempty"` // last completed flood write, Unix nanoseconds
	State json.RawMessage `json:"state,omitempty"`
}

// At is when the event happened.
func (e event) At() time.Time { return time.Unix(0, e.T) }

// runRole runs the role named by roleEnv and returns the exit code.
func runRole(name string) int {
	var cfg roleConfig
	if err := json.Unmarshal([]byte(os.Getenv(roleConfigEnv)), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "role %s: bad %s: %v\n", name, roleConfigEnv, err)
		return 2
	}
	out := &emitter{w: os.Stdout}
	cmds := commands(os.Stdin)
	var err error
	switch name {
	case "backend":
		err = runBackend(cfg, out, cmds)
	case "client":
		err = runClient(cfg, out, cmds)
	case "browser":
		err = runBrowser(cfg, out, cmds)
	default:
		err = fmt.Errorf("unknown role %q", name)
	}
	if err != nil {
		out.emit(event{Ev: "error", Err: err.Error()})
		fmt.Fprintf(os.Stderr, "role %s: %v\n", name, err)
		return 1
	}
	return 0
}

// emitter prints events, one JSON line each.
type emitter struct {
	mu sync.Mutex
	w  io.Writer
}

func (e *emitter) emit(ev event) {
	if ev.T == 0 {
		ev.T = time.Now().UnixNano()
	}
	b, _ := json.Marshal(ev)
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.w.Write(append(b, '\n'))
}

// commands delivers the lines of r, split into verb and argument; the
// channel closes when r ends.
func commands(r io.Reader) <-chan [2]string {
	ch := make(chan [2]string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			verb, arg, _ := strings.Cut(sc.Text(), " ")
			ch <- [2]string{verb, arg}
		}
	}()
	return ch
}

// peer is the test's handle on a running role.
type peer struct {
	t     *testing.T
	name  string
	proc  *proc
	stdin io.WriteCloser

	mu      sync.Mutex
	events  []event
	changed chan struct{}
}

// startRole runs role in namespace ns.
func startRole(t *testing.T, ns, role string, cfg roleConfig) *peer {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(cfg)
	p := &peer{t: t, name: role, changed: make(chan struct{})}
	pr, pw := io.Pipe()
	p.proc, p.stdin = startProc(t, procSpec{
		Name:   role,
		NS:     ns,
		Argv:   []string{exe, "-test.run=^$"},
		Env:    []string{roleEnv + "=" + role, roleConfigEnv + "=" + string(raw)},
		Stdout: pw,
		Stdin:  true,
	})
	go p.collect(pr)
	go func() { <-p.proc.Exited(); pw.Close() }()
	return p
}

// collect parses the role's stdout.
func (p *peer) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			ev = event{Ev: "garbage", Data: sc.Text(), T: time.Now().UnixNano()}
		}
		p.mu.Lock()
		p.events = append(p.events, ev)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

// Do sends one command line to the role.
func (p *peer) Do(format string, args ...any) {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.stdin, format+"\n", args...); err != nil {
		p.t.Fatalf("%s: sending command: %v", p.name, err)
	}
}

// Mark returns the number of events so far, for WaitAfter.
func (p *peer) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.events)
}

// find returns the first event from index from on for which match holds.
func (p *peer) find(from int, match func(event) bool) (event, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range p.events[min(from, len(p.events)):] {
		if match(ev) {
			return ev, true
		}
	}
	return event{}, false
}

// Find returns the first event so far for which match holds.
func (p *peer) Find(match func(event) bool) (event, bool) { return p.find(0, match) }

// Count returns how many events so far match.
func (p *peer) Count(match func(event) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, ev := range p.events {
		if match(ev) {
			n++
		}
	}
	return n
}

// Within waits up to d for an event that matches (seen before or after
// the call) and reports whether one came.
func (p *peer) Within(d time.Duration, match func(event) bool) (event, bool) {
	return p.within(0, d, match)
}

// within waits up to d for a matching event from index from on. A role
// that reports an error fails the test.
func (p *peer) within(from int, d time.Duration, match func(event) bool) (event, bool) {
	p.t.Helper()
	deadline := time.After(d)
	for {
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		if ev, ok := p.find(from, match); ok {
			return ev, true
		}
		if ev, ok := p.Find(is("error")); ok {
			p.t.Fatalf("%s reported an error: %s", p.name, ev.Err)
		}
		select {
		case <-changed:
		case <-deadline:
			return event{}, false
		}
	}
}

// WaitAfter waits up to d for a matching event among those after mark
// (see Mark) and fails the test when none comes.
func (p *peer) WaitAfter(mark int, d time.Duration, what string, match func(event) bool) event {
	p.t.Helper()
	ev, ok := p.within(mark, d, match)
	if !ok {
		p.t.Fatalf("%s: no %s within %v; events so far:\n%s", p.name, what, d, p.History())
	}
	return ev
}

// Wait is Within that fails the test when no event comes.
func (p *peer) Wait(d time.Duration, what string, match func(event) bool) event {
	p.t.Helper()
	return p.WaitAfter(0, d, what, match)
}

// History renders the events so far, one per line.
func (p *peer) History() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, ev := range p.events {
		raw, _ := json.Marshal(ev)
		fmt.Fprintf(&b, "  %s %s\n", ev.At().Format("15:04:05.000"), raw)
	}
	return b.String()
}

// is matches events of kind ev.
func is(ev string) func(event) bool {
	return func(e event) bool { return e.Ev == ev }
}

// msg matches a message event with exactly data.
func msg(data string) func(event) bool {
	return func(e event) bool { return e.Ev == "msg" && e.Data == data }
}
