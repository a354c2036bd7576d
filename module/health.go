package wsrelay

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gobwas/ws"
	"go.uber.org/zap"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
	"github.com/websocket-relay/websocket_relay/module/upgrade"
)

// healthChecker runs a handler's active health checks: started by
// Provision and stopped by Cleanup, one goroutine per upstream checks it
// every interval, each on its own, so that an upstream slow to answer
// holds back no other's checks, and marks it healthy or not in the pool.
type healthChecker struct {
	h      *Handler
	cfg    *relayconfig.HealthChecks
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// streak is, for each upstream, how many checks in a row disagreed
	// with its state; only the upstream's own goroutine touches it.
	streak []int
	// bodyRe is ExpectBody compiled, or nil.
	bodyRe *regexp.Regexp
}

// startHealthChecks starts h's health checks, if it has any.
func (h *Handler) startHealthChecks() {
	if h.HealthChecks == nil || h.pool == nil || h.HealthChecks.Validate() != nil {
		return // none, or Validate refuses them after Provision
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &healthChecker{h: h, cfg: h.HealthChecks, cancel: cancel, streak: make([]int, len(h.pool.list))}
	if c.cfg.ExpectBody != "" {
		c.bodyRe = regexp.MustCompile(c.cfg.ExpectBody) // checked by Validate
	}
	h.health = c
	for i := range h.pool.list {
		c.wg.Go(func() { c.run(ctx, i) })
	}
}

// stop ends the checks and waits for their goroutines; checks under way
// end at once.
func (c *healthChecker) stop() {
	c.cancel()
	c.wg.Wait()
}

// run checks upstream i at once and then every interval, until ctx
// ends. A check longer than the interval delays the next one.
func (c *healthChecker) run(ctx context.Context, i int) {
	t := time.NewTicker(time.Duration(c.cfg.Interval))
	defer t.Stop()
	for {
		err := c.check(ctx, c.h.pool.list[i])
		if ctx.Err() != nil {
			return // a check cut by Cleanup says nothing
		}
		c.record(i, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record takes one check's result for upstream i: Fails failures in a
// row make a healthy upstream unhealthy, Passes passes an unhealthy one
// healthy.
func (c *healthChecker) record(i int, err error) {
	p := c.h.pool
	healthy := !p.unhealthy[i].Load()
	if (err == nil) == healthy {
		c.streak[i] = 0
		return
	}
	c.streak[i]++
	need := c.cfg.Fails
	if !healthy {
		need = c.cfg.Passes
	}
	if c.streak[i] < need {
		return
	}
	c.streak[i] = 0
	p.unhealthy[i].Store(healthy)
	up := p.list[i].Raw
	if healthy {
		c.h.logger.Warn("upstream unhealthy", zap.String("upstream", up), zap.Int("checks_failed", need), zap.Error(err))
	} else {
		c.h.logger.Info("upstream healthy", zap.String("upstream", up), zap.Int("checks_passed", need))
	}
}

// check asks up for the health URI within the timeout: a request whose
// answer must have the expected status (and body), or with Upgrade a
// WebSocket upgrade whose 101 must be valid, closed at once with 1001.
func (c *healthChecker) check(ctx context.Context, up relayconfig.Upstream) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.cfg.Timeout))
	defer cancel()
	target := c.target(up)
	if !c.cfg.Upgrade {
		return c.request(ctx, up, target)
	}
	conn, err := c.h.dialOne(ctx, target)
	if err != nil {
		return fmt.Errorf("dialing: %w", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	defer stop()
	req := c.newRequest(target, nil)
	key := upgrade.NewKey()
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", key)
	req = backendRequest(req, target, nil)
	c.setHeaders(req, up, upgradeFields...)
	bw := bufio.NewWriterSize(conn, 512)
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := upgrade.Exchange(bw, br, req, key)
	if err != nil {
		return err
	}
	// The answer's body is not read, nor its Body closed (which would
	// read it to its end): its status says it, and the connection is
	// closed now.
	if !c.cfg.StatusOK(resp.StatusCode) {
		return fmt.Errorf("answered %d, want %s", resp.StatusCode, c.wantStatus())
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// As a client leaves: a masked close frame, unanswered.
		f := ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "health check")))
		_ = ws.WriteFrame(conn, f)
	}
	return nil
}

// request makes a check that is not an upgrade: the method, body and
// headers configured, over a connection of its own to target (as are
// the redirects it follows), and the answer's status and body checked.
func (c *healthChecker) request(ctx context.Context, up, target relayconfig.Upstream) error {
	var body io.Reader
	if c.cfg.Body != "" {
		// Only known placeholders: a JSON body's braces stay.
		body = strings.NewReader(caddy.NewReplacer().ReplaceKnown(c.cfg.Body, ""))
	}
	req := c.newRequest(target, body)
	out := backendRequest(req, target, nil)
	for _, k := range upgradeFields {
		out.Header.Del(k)
	}
	out.Method, out.Body, out.ContentLength, out.GetBody = req.Method, req.Body, req.ContentLength, req.GetBody
	out.URL.Scheme, out.URL.Host = "http", out.Host
	c.setHeaders(out, up)
	out = out.WithContext(ctx)
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return c.h.dialOne(ctx, target) }
	tr := &http.Transport{
		// Every connection, the redirects' too, goes to target, with its
		// own TLS for a wss:// upstream, whatever a URL's scheme says.
		DialContext:        dial,
		DialTLSContext:     dial,
		DisableKeepAlives:  true,
		DisableCompression: true,
		Proxy:              nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(_ *http.Request, via []*http.Request) error {
		if !c.cfg.FollowRedirects {
			return http.ErrUseLastResponse
		}
		return nil // as reverse_proxy's: as many as health_timeout allows
	}}
	resp, err := client.Do(out)
	if err != nil {
		return err
	}
	// The body is read only for ExpectBody: a trickling one would hold
	// the check until its timeout.
	defer resp.Body.Close()
	if !c.cfg.StatusOK(resp.StatusCode) {
		return fmt.Errorf("answered %d, want %s", resp.StatusCode, c.wantStatus())
	}
	if c.cfg.ExpectBody == "" {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxSize))
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if !c.bodyRe.Match(b) {
		return fmt.Errorf("the body (%d bytes read) does not match %q", len(b), c.cfg.ExpectBody)
	}
	return nil
}

// target is where up's checks go: up itself, or the health upstream
// or port configured instead.
func (c *healthChecker) target(up relayconfig.Upstream) relayconfig.Upstream {
	t := up
	switch {
	case c.cfg.Upstream != "":
		t.Network, t.Addr = "tcp", c.cfg.Upstream
	case c.cfg.Port != 0 && up.Network == "tcp":
		host, _, _ := net.SplitHostPort(up.Addr)
		t.Addr = net.JoinHostPort(host, strconv.Itoa(c.cfg.Port))
	}
	return t
}

// upgradeFields are the upgrade's own fields, which a check that is no
// upgrade does not send and the configured headers do not change.
var upgradeFields = []string{"Connection", "Upgrade", "Sec-Websocket-Version", "Sec-Websocket-Key"}

// newRequest is a check's request before backendRequest: the health URI
// (under the upstream's path, as a client's request path goes), the
// method and body, and target's Host.
func (c *healthChecker) newRequest(target relayconfig.Upstream, body io.Reader) *http.Request {
	u, _ := url.ParseRequestURI(c.cfg.URI)           // checked by Validate
	r, _ := http.NewRequest(c.cfg.Method, "/", body) // the method is checked by Validate
	r.URL = u
	if target.Network == "unix" {
		r.Host = "localhost" // a socket's path is no host
	}
	r.Header.Set("User-Agent", "websocket_relay health check")
	return r
}

// setHeaders sets the configured headers on r, but those named in
// keep, as reverse_proxy's health_headers: names are merged whatever
// their case (in the names' order, for the values' order), a Host sets
// the Host unless it comes out empty (then the target's stays), the
// placeholders of names and of a Host are all replaced, a value's known
// ones only, and {http.reverse_proxy.active.target_upstream} is up's
// address.
func (c *healthChecker) setHeaders(r *http.Request, up relayconfig.Upstream, keep ...string) {
	if len(c.cfg.Headers) == 0 {
		return
	}
	repl := caddy.NewReplacer()
	repl.Set(relayconfig.HealthTargetPlaceholder, up.Dial())
	merged := http.Header{}
	for _, name := range slices.Sorted(maps.Keys(c.cfg.Headers)) {
		cn := http.CanonicalHeaderKey(repl.ReplaceAll(name, ""))
		merged[cn] = append(merged[cn], c.cfg.Headers[name]...)
	}
	for name, vals := range merged {
		switch {
		case name == "Host":
			if host := repl.ReplaceAll(vals[0], ""); host != "" {
				r.Host = host
			}
			continue
		case slices.Contains(keep, name):
			continue
		}
		r.Header.Del(name)
		for _, v := range vals {
			r.Header.Add(name, repl.ReplaceKnown(v, ""))
		}
	}
}

func (c *healthChecker) wantStatus() string {
	if c.cfg.ExpectStatus < 10 {
		return fmt.Sprintf("%dxx", c.cfg.ExpectStatus)
	}
	return fmt.Sprint(c.cfg.ExpectStatus)
}
