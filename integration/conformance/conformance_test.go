package conformance

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

func TestMain(m *testing.M) { os.Exit(rt.Main(m)) }

// target is one way to reach one echo server: directly or through caddy.
type target struct {
	backend string
	relayed bool
	addr    string
	path    string
}

// result is the outcome of one case on one target.
type result struct {
	outcome outcome
	verdict string
}

// TestConformance runs every case of sections 1-7 against a
// coder/websocket and a gorilla/websocket echo server, directly and
// through the relay, prints the report, and asserts that every case a
// backend passes directly also passes through the relay.
func TestConformance(t *testing.T) {
	t.Parallel()
	cases := allCases()
	servers := map[string]*httptest.Server{
		"coder":   httptest.NewServer(http.HandlerFunc(coderEcho)),
		"gorilla": httptest.NewServer(http.HandlerFunc(gorillaEcho)),
	}
	for _, s := range servers {
		t.Cleanup(s.Close)
	}
	caddy := rt.NewCaddy(t, rt.Options{})
	caddy.Start(func(c *rt.Caddy) string {
		var b strings.Builder
		fmt.Fprintf(&b, "http://:%d {\n", c.HTTPPort)
		for _, name := range []string{"coder", "gorilla"} {
			fmt.Fprintf(&b, "\twebsocket_relay /%s* %s {\n\t\tping_interval off\n\t}\n", name, servers[name].Listener.Addr())
		}
		b.WriteString("}\n")
		return b.String()
	})
	backends := []string{"coder", "gorilla"}
	var targets []target
	for _, name := range backends {
		targets = append(targets,
			target{backend: name, addr: servers[name].Listener.Addr().String(), path: "/"},
			target{backend: name, relayed: true, addr: caddy.HTTPAddr(), path: "/" + name})
	}
	start := time.Now()
	results := runAll(cases, targets)
	t.Logf("%d cases on %d targets in %v", len(cases), len(targets), time.Since(start).Round(time.Millisecond))
	caddy.CheckNoPanic()

	report, regressions, summary := buildReport(cases, backends, results)
	path := os.Getenv("WSRELAY_CONFORMANCE_REPORT")
	if path == "" {
		path = filepath.Join(os.TempDir(), "wsrelay-conformance-report.txt")
	}
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		t.Errorf("writing the report: %v", err)
	}
	if testing.Verbose() {
		t.Log("\n" + report)
	}
	t.Logf("report written to %s", path)
	for _, line := range summary {
		t.Log(line)
	}
	for _, r := range regressions {
		t.Errorf("passes directly but not through the relay: %s", r)
	}
	// The harness must be able to tell a good server: each strict backend
	// passes nearly everything directly.
	for bi, name := range backends {
		passed := 0
		for ci := range cases {
			if passes(results[ci][2*bi].verdict) {
				passed++
			}
		}
		if passed < len(cases)*9/10 {
			t.Errorf("%s passes only %d of %d cases directly: the harness is broken", name, passed, len(cases))
		}
	}
}

// runAll runs every case on every target, many at once, and returns the
// results by case and target.
func runAll(cases []*caseDef, targets []target) [][]result {
	results := make([][]result, len(cases))
	for i := range results {
		results[i] = make([]result, len(targets))
	}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for ci, cs := range cases {
		for ti, tg := range targets {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				o := runCase(tg.addr, tg.path, cs)
				_, _, v := judge(cs, o)
				results[ci][ti] = result{outcome: o, verdict: v}
			}()
		}
	}
	wg.Wait()
	return results
}

// reportLegend says what the verdicts mean.
const reportLegend = `websocket_relay conformance report, modelled on Autobahn|Testsuite sections 1-7.
Each case runs against each strict backend directly and through the relay.
Verdicts (see judge in verdict_test.go): OK and NON-STRICT as in Autobahn
(NON-STRICT: a weaker outcome Autobahn allows, e.g. no echo before the
failure, UTF-8 failure only at the end of the message, or a late TCP close);
INFORMATIONAL: behaviour the spec leaves open, recorded only; FAILED: wrong
events, close by the wrong endpoint, wrong close code, or a violation the
server never failed the connection for. OK, NON-STRICT and INFORMATIONAL pass.
The relay must pass every case the backend passes directly. It enforces the
framing rules (sections 1-5, 7) itself, answering 1002; it forwards text
untouched, so UTF-8 (section 6) is the backend's 1007.
Outcome: verdict [events] close <code received> <how the TCP connection ended>
`

// buildReport renders the report, lists the cases that pass directly but
// not through the relay, and summarises the counts.
func buildReport(cases []*caseDef, backends []string, results [][]result) (string, []string, []string) {
	var b strings.Builder
	b.WriteString(reportLegend + "\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tbackend\tresult\tdirect\trelayed\tdescription")
	var regressions []string
	counts := map[string]map[string]int{}
	for ci, cs := range cases {
		for bi, name := range backends {
			direct, relayed := results[ci][2*bi], results[ci][2*bi+1]
			res := "pass"
			switch {
			case passes(direct.verdict) && !passes(relayed.verdict):
				res = "FAIL"
				regressions = append(regressions, fmt.Sprintf("%s %s (%s): direct %s, relayed %s",
					cs.id, name, cs.desc, describe(cs, direct.outcome), describe(cs, relayed.outcome)))
			case !passes(relayed.verdict):
				res = "fails direct too"
			}
			for _, k := range []string{name + " direct:" + direct.verdict, name + " relayed:" + relayed.verdict} {
				key, v, _ := strings.Cut(k, ":")
				if counts[key] == nil {
					counts[key] = map[string]int{}
				}
				counts[key][v]++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cs.id, name, res,
				describe(cs, direct.outcome), describe(cs, relayed.outcome), shorten(cs.desc, 90))
		}
	}
	tw.Flush()
	var summary []string
	for _, name := range backends {
		for _, how := range []string{"direct", "relayed"} {
			c := counts[name+" "+how]
			summary = append(summary, fmt.Sprintf("%-8s %-8s %d cases: %d OK, %d NON-STRICT, %d INFORMATIONAL, %d FAILED",
				name, how, len(cases), c[OK], c[NonStrict], c[Informational], c[Failed]))
		}
	}
	b.WriteString("\n" + strings.Join(summary, "\n") + "\n")
	return b.String(), regressions, summary
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// TestUTF8Validator checks the echo servers' incremental validator against
// unicode/utf8 on every section 6 sequence, whole and byte by byte.
func TestUTF8Validator(t *testing.T) {
	var all []utf8Seq
	for _, g := range utf8Sequences() {
		all = append(all, g.seqs...)
	}
	for _, s := range all {
		if s.valid != utf8.ValidString(s.s) {
			t.Errorf("sequence %x is marked valid=%v, unicode/utf8 says %v", s.s, s.valid, !s.valid)
		}
		var whole, bytewise utf8Validator
		okWhole := whole.write([]byte(s.s)) && whole.complete()
		okBytes := true
		for i := 0; i < len(s.s) && okBytes; i++ {
			okBytes = bytewise.write([]byte{s.s[i]})
		}
		okBytes = okBytes && bytewise.complete()
		if okWhole != s.valid || okBytes != s.valid {
			t.Errorf("validator on %x: whole %v, byte by byte %v, want %v", s.s, okWhole, okBytes, s.valid)
		}
	}
}
