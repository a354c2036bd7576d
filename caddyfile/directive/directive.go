// Package directive parses the websocket_relay Caddyfile directive into
// the handler's options. It imports only Caddy's core and Caddyfile
// packages, not its HTTP app, so its fuzz target builds without them;
// package relaycaddyfile registers the directive.
package directive

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	relayconfig "github.com/websocket-relay/websocket_relay/module/config"
)

// Name is the directive's name in a Caddyfile.
const Name = "websocket_relay"

// Unmarshal sets o from the tokens of one websocket_relay directive,
// starting at the directive's name. Syntax:
//
//	websocket_relay [<matcher>] [<upstreams...>] {
//	    to                <upstreams...>
//	    ping_interval     <duration>|off
//	    pong_timeout      <duration>
//	    write_timeout     <duration>
//	    dial_timeout      <duration>
//	    handshake_timeout <duration>
//	    close_timeout     <duration>
//	    stall_timeout     <duration>
//	    drain_period      <duration>|off
//	    event_loops       on|off
//	    tls_insecure_skip_verify
//	    tls_trusted_ca_certs <pem_files...>
//	    tls_server_name   <name>
//	    header_up         [+|-]<field> [<value>|<regexp> <replacement>]
//	    lb_policy         <policy> [<args...>] [{
//	        fallback <policy> [<args...>]
//	        max_age  <duration>
//	    }]
//	    lb_try_duration   <duration>
//	    lb_try_interval   <duration>
//	    lb_retries        <n>
//	    health_uri        <uri>
//	    health_interval   <duration>
//	    health_timeout    <duration>
//	    health_status     <code>|<class>
//	    health_passes     <n>
//	    health_fails      <n>
//	    health_upgrade
//	    health_upstream   <host:port>
//	    health_port       <port>
//	    health_headers {
//	        <field> [<values...>]
//	    }
//	    health_method     <method>
//	    health_request_body <body>
//	    health_body       <regexp>
//	    health_follow_redirects
//	    fail_duration     <duration>|off
//	    max_fails         <n>
//	    unhealthy_status  <codes|classes...>
//	    unhealthy_latency <duration>
//	    unhealthy_request_count <n>
//	}
//
// An upstream is host:port, ws://host[:port][/path],
// wss://host[:port][/path] or unix/<socket path>; `to` may repeat and
// adds upstreams, header_up may repeat too (as reverse_proxy's:
// `Field value` sets a field, `+Field value` adds a value, `-Field`
// deletes it, `Field regexp replacement` replaces in it), every other
// subdirective may be given once. At least
// one upstream is required, and a wss:// one for tls_trusted_ca_certs
// and tls_server_name. lb_policy reads as reverse_proxy's: round_robin,
// `weighted_round_robin <weights...>` (one per upstream), least_conn,
// `random_choose <n>`, first, random, ip_hash, client_ip_hash, uri_hash,
// `header <field>`, `query <key>` or `cookie [<name> [<secret>]]`, the
// last three with a fallback (which may have its own block), cookie
// with a max_age. lb_try_duration and lb_retries try every upstream
// again, lb_try_interval apart, when all failed. The health_* lines set active health checks, which
// need health_uri (health_path is its deprecated form, a path alone);
// health_status takes a code (200) or a class (2xx); health_method,
// health_request_body, health_body and health_follow_redirects do not
// go with health_upgrade, nor health_port with health_upstream or a
// Unix socket upstream. fail_duration, max_fails, unhealthy_status,
// unhealthy_latency and unhealthy_request_count are reverse_proxy's
// passive health checks, judged by the upgrades.
// Durations take Caddy's units (including d for days) and must
// be positive; `ping_interval off` turns relay pings off; `drain_period
// off` closes all relays at once on a config reload; `event_loops off`
// keeps every relay on the goroutine engine. The matcher is removed by
// httpcaddyfile before this runs. Unset options are left zero, so the
// module's defaults apply.
func Unmarshal(d *caddyfile.Dispenser, o *relayconfig.Options) error {
	if !d.Next() { // consume the directive name
		return d.Err("expected the websocket_relay directive")
	}
	start := d.Token()
	if err := addUpstreams(d, o, d.RemainingArgs()); err != nil {
		return err
	}
	seen := make(map[string]bool)
	var tlsOpt *caddyfile.Token // the first of tls_trusted_ca_certs, tls_server_name
	var lbLine, tryInterval *caddyfile.Token
	var healthLine *caddyfile.Token // the first health_* line but health_uri
	healthLines := map[string]caddyfile.Token{}
	for d.NextBlock(0) {
		name := d.Val()
		if d.Nesting() > 1 {
			return d.Errf("unexpected '%s': subdirectives of %s other than lb_policy and health_headers take no block", name, Name)
		}
		if name != "to" && name != "header_up" && seen[name] {
			return d.Errf("subdirective '%s' given more than once", name)
		}
		seen[name] = true
		if (name == "tls_trusted_ca_certs" || name == "tls_server_name") && tlsOpt == nil {
			tok := d.Token()
			tlsOpt = &tok
		}
		if name == "lb_policy" {
			tok := d.Token()
			lbLine = &tok
		}
		if name == "lb_try_interval" {
			tok := d.Token()
			tryInterval = &tok
		}
		if strings.HasPrefix(name, "health_") {
			tok := d.Token()
			healthLines[name] = tok
			if name != "health_uri" && name != "health_path" && healthLine == nil {
				healthLine = &tok
			}
		}
		if err := parseSubdirective(d, o, name); err != nil {
			return err
		}
	}
	if len(o.Upstreams) == 0 {
		return errAt(start, "no upstream: give at least one after %s or on a 'to' line", Name)
	}
	if tlsOpt != nil && !o.HasTLSUpstream() {
		return errAt(*tlsOpt, "%s applies to wss:// upstreams, and none is given", tlsOpt.Text)
	}
	if lbLine != nil {
		if err := o.LBPolicy.CheckUpstreams(len(o.Upstreams)); err != nil {
			return errAt(*lbLine, "lb_policy: %v", err)
		}
	}
	if tryInterval != nil && o.TryDuration == 0 && o.Retries == 0 {
		return errAt(*tryInterval, "lb_try_interval needs lb_try_duration or lb_retries: without them an upgrade is not tried again")
	}
	if healthLine != nil && o.HealthChecks.URI == "" {
		return errAt(*healthLine, "%s needs health_uri: the checks ask each upstream for it", healthLine.Text)
	}
	if _, ok := healthLines["health_uri"]; ok {
		if tok, ok := healthLines["health_path"]; ok {
			return errAt(tok, "health_path with health_uri: health_path is the deprecated form of health_uri; give health_uri alone")
		}
	}
	return checkHealthLines(o, healthLines)
}

// durationFields maps each plain duration subdirective to its field.
var durationFields = map[string]func(*relayconfig.Options) *caddy.Duration{
	"pong_timeout":      func(o *relayconfig.Options) *caddy.Duration { return &o.PongTimeout },
	"write_timeout":     func(o *relayconfig.Options) *caddy.Duration { return &o.WriteTimeout },
	"dial_timeout":      func(o *relayconfig.Options) *caddy.Duration { return &o.DialTimeout },
	"handshake_timeout": func(o *relayconfig.Options) *caddy.Duration { return &o.HandshakeTimeout },
	"close_timeout":     func(o *relayconfig.Options) *caddy.Duration { return &o.CloseTimeout },
	"stall_timeout":     func(o *relayconfig.Options) *caddy.Duration { return &o.StallTimeout },
	"lb_try_duration":   func(o *relayconfig.Options) *caddy.Duration { return &o.TryDuration },
	"lb_try_interval":   func(o *relayconfig.Options) *caddy.Duration { return &o.TryInterval },
}

// subdirectives lists every subdirective, for the unknown-name error.
const subdirectives = "to, ping_interval, pong_timeout, write_timeout, dial_timeout, " +
	"handshake_timeout, close_timeout, stall_timeout, drain_period, event_loops, tls_insecure_skip_verify, " +
	"tls_trusted_ca_certs, tls_server_name, header_up, lb_policy, lb_try_duration, lb_try_interval, lb_retries, health_uri, health_interval, health_timeout, " +
	"health_status, health_passes, health_fails, health_upgrade, health_upstream, health_port, health_headers, " +
	"health_method, health_request_body, health_body, health_follow_redirects, fail_duration, max_fails, " +
	"unhealthy_status, unhealthy_latency, unhealthy_request_count"

// parseSubdirective parses the line of subdirective name, whose token is
// the current one.
func parseSubdirective(d *caddyfile.Dispenser, o *relayconfig.Options, name string) error {
	switch name {
	case "to":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		return addUpstreams(d, o, args)
	case "ping_interval":
		return parseDurationOrOff(d, name, &o.PingInterval)
	case "drain_period":
		return parseDurationOrOff(d, name, &o.DrainPeriod)
	case "event_loops":
		val, err := oneArg(d)
		if err != nil {
			return err
		}
		if val != "on" && val != "off" {
			return d.Errf("event_loops: want on or off, got '%s'", val)
		}
		o.DisableEventLoops = val == "off"
		return nil
	case "tls_insecure_skip_verify":
		if d.NextArg() {
			return d.ArgErr()
		}
		o.TLSInsecureSkipVerify = true
		return nil
	case "tls_trusted_ca_certs":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		if slices.Contains(args, "") {
			return d.Errf("tls_trusted_ca_certs: empty file name")
		}
		o.TLSTrustedCACerts = args
		return nil
	case "header_up":
		return parseHeaderUp(d, o)
	case "lb_policy":
		p, err := parseLBPolicy(d)
		if err != nil {
			return err
		}
		o.LBPolicy = p
		return nil
	case "lb_retries":
		val, err := oneArg(d)
		if err != nil {
			return err
		}
		n, err := countArg(d, name, val)
		o.Retries = n
		return err
	case "tls_server_name":
		val, err := oneArg(d)
		if err != nil {
			return err
		}
		if val == "" {
			return d.Errf("tls_server_name: empty name")
		}
		o.TLSServerName = val
		return nil
	}
	if strings.HasPrefix(name, "health_") {
		return parseHealth(d, o, name)
	}
	if passiveLines[name] {
		return parsePassive(d, o, name)
	}
	field, ok := durationFields[name]
	if !ok {
		return d.Errf("unrecognized subdirective '%s' (want one of: %s)", name, subdirectives)
	}
	dur, err := positiveDuration(d, name)
	if err != nil {
		return err
	}
	*field(o) = caddy.Duration(dur)
	return nil
}

// parseHealth parses one health_* line, as reverse_proxy reads its
// health_* lines where it has the same one; health_upgrade is the
// relay's.
func parseHealth(d *caddyfile.Dispenser, o *relayconfig.Options, name string) error {
	if o.HealthChecks == nil {
		o.HealthChecks = &relayconfig.HealthChecks{}
	}
	hc := o.HealthChecks
	switch name {
	case "health_upgrade", "health_follow_redirects":
		if d.NextArg() {
			return d.ArgErr()
		}
		if name == "health_upgrade" {
			hc.Upgrade = true
		} else {
			hc.FollowRedirects = true
		}
		return nil
	case "health_headers":
		return parseHealthHeaders(d, hc)
	case "health_interval", "health_timeout":
		dur, err := positiveDuration(d, name)
		if err != nil {
			return err
		}
		if name == "health_interval" {
			hc.Interval = caddy.Duration(dur)
		} else {
			hc.Timeout = caddy.Duration(dur)
		}
		return nil
	}
	val, err := oneArg(d)
	if err != nil {
		return err
	}
	switch name {
	case "health_uri":
		hc.URI = val
	case "health_path":
		// reverse_proxy's deprecated form of health_uri: a path alone.
		if strings.Contains(val, "?") {
			return d.Errf("%s: '%s' has a query: health_uri takes a path and query (health_path is its deprecated form)", name, val)
		}
		hc.URI = val
		caddy.Log().Named("config.adapter.caddyfile").Warn("the 'health_path' subdirective is deprecated, please use 'health_uri' instead!")
	case "health_upstream":
		hc.Upstream = val
	case "health_port":
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 || n > 65535 {
			return d.Errf("%s: want a port (1-65535), got '%s'", name, val)
		}
		hc.Port = n
	case "health_method":
		hc.Method = val
	case "health_request_body":
		hc.Body = val
	case "health_body":
		hc.ExpectBody = val
	case "health_status":
		n, err := statusArg(d, name, val)
		if err != nil {
			return err
		}
		hc.ExpectStatus = n
	case "health_passes", "health_fails":
		n, err := countArg(d, name, val)
		if err != nil {
			return err
		}
		if name == "health_passes" {
			hc.Passes = n
		} else {
			hc.Fails = n
		}
	default:
		return d.Errf("unrecognized subdirective '%s' (want one of: %s)", name, subdirectives)
	}
	// This line's value alone, checked as Validate checks it.
	alone := relayconfig.HealthChecks{URI: cmp.Or(hc.URI, "/"), ExpectStatus: hc.ExpectStatus,
		Upstream: hc.Upstream, Method: hc.Method, ExpectBody: hc.ExpectBody}
	if err := alone.Validate(); err != nil {
		return d.Errf("%s: %v", name, err)
	}
	return nil
}

// passiveLines are the lines of the passive health checks, as
// reverse_proxy names them.
var passiveLines = map[string]bool{"fail_duration": true, "max_fails": true, "unhealthy_status": true,
	"unhealthy_latency": true, "unhealthy_request_count": true}

// parsePassive parses one line of the passive health checks, as
// reverse_proxy reads it; `fail_duration off` remembers no failure.
func parsePassive(d *caddyfile.Dispenser, o *relayconfig.Options, name string) error {
	if o.PassiveHealthChecks == nil {
		o.PassiveHealthChecks = &relayconfig.PassiveHealthChecks{}
	}
	pc := o.PassiveHealthChecks
	switch name {
	case "fail_duration":
		return parseDurationOrOff(d, name, &pc.FailDuration)
	case "unhealthy_latency":
		dur, err := positiveDuration(d, name)
		pc.UnhealthyLatency = caddy.Duration(dur)
		return err
	case "unhealthy_status":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		for _, arg := range args {
			n, err := statusArg(d, name, arg)
			if err != nil {
				return err
			}
			pc.UnhealthyStatus = append(pc.UnhealthyStatus, n)
		}
		if err := (&relayconfig.PassiveHealthChecks{UnhealthyStatus: pc.UnhealthyStatus}).Validate(); err != nil {
			return d.Errf("%s: %v", name, err)
		}
		return nil
	}
	val, err := oneArg(d)
	if err != nil {
		return err
	}
	n, err := countArg(d, name, val)
	if err != nil {
		return err
	}
	if name == "max_fails" {
		pc.MaxFails = n
	} else {
		pc.UnhealthyRequestCount = n
	}
	return nil
}

// statusArg reads val, an argument of line name, as reverse_proxy reads
// a status: a code (503) or a class (5xx, read as 5).
func statusArg(d *caddyfile.Dispenser, name, val string) (int, error) {
	code := val
	if len(val) == 3 && strings.HasSuffix(val, "xx") {
		code = val[:1]
	}
	n, err := strconv.Atoi(code)
	if err != nil {
		return 0, d.Errf("%s: invalid status '%s': want a code (503) or a class (5xx)", name, val)
	}
	return n, nil
}

// countArg reads val, an argument of line name, as a whole number
// above 0.
func countArg(d *caddyfile.Dispenser, name, val string) (int, error) {
	n, err := strconv.Atoi(val)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: want a whole number above 0, got '%s'", name, val)
	}
	return n, nil
}

// parseHealthHeaders parses a health_headers block as reverse_proxy's:
// a line per field, `<field> [<values...>]`, a field without a value
// set empty, a field repeated adds values.
func parseHealthHeaders(d *caddyfile.Dispenser, hc *relayconfig.HealthChecks) error {
	if d.NextArg() {
		return d.Errf("health_headers takes a block of '<field> <values...>' lines, not '%s'", d.Val())
	}
	hdr := http.Header{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		field, tok := d.Val(), d.Token()
		vals := d.RemainingArgs()
		if len(vals) == 0 {
			vals = []string{""}
		}
		if err := (&relayconfig.HealthChecks{URI: "/", Headers: http.Header{field: vals}}).Validate(); err != nil {
			return d.Errf("health_headers: %v", err)
		}
		if d.NextBlock(d.Nesting()) {
			return errAt(tok, "health_headers: '%s' takes no block", field)
		}
		hdr[field] = append(hdr[field], vals...)
	}
	if len(hdr) == 0 {
		return d.Errf("health_headers: an empty block; give '<field> <values...>' lines")
	}
	hc.Headers = hdr
	return nil
}

// checkHealthLines reports what the health_* lines set together and no
// line alone can say, at the line that does not fit.
func checkHealthLines(o *relayconfig.Options, lines map[string]caddyfile.Token) error {
	hc := o.HealthChecks
	if hc == nil {
		return nil
	}
	if hc.Upgrade {
		for _, name := range []string{"health_method", "health_request_body", "health_body", "health_follow_redirects"} {
			tok, ok := lines[name]
			if !ok || name == "health_method" && hc.Method == http.MethodGet {
				continue
			}
			return errAt(tok, "%s does not go with health_upgrade: a check is then a WebSocket upgrade, a GET without a body answered by a 101 without one", name)
		}
	}
	if tok, ok := lines["health_port"]; ok {
		if hc.Upstream != "" {
			return errAt(tok, "health_port does not go with health_upstream, which names the port")
		}
		if err := hc.CheckUpstreams(o.Upstreams); err != nil {
			return errAt(tok, "health_%v", err)
		}
	}
	return nil
}

// parseHeaderUp parses one header_up line as reverse_proxy's header_up
// reads it (Caddy's headers.CaddyfileHeaderOp): `+<field> <value>` adds a
// value, `-<field>` deletes the field (a leading or trailing * matches a
// suffix, prefix or substring), `[>]<field> <regexp> <replacement>`
// replaces in its values, `[>]<field> [<value>]` sets it. As in Caddy, a
// value after -<field>, or a third argument after +<field>, is ignored.
// Field names take no placeholders.
func parseHeaderUp(d *caddyfile.Dispenser, o *relayconfig.Options) error {
	args := d.RemainingArgs()
	if len(args) == 0 || len(args) > 3 {
		return d.ArgErr()
	}
	if o.HeaderUp == nil {
		o.HeaderUp = &relayconfig.HeaderOps{}
	}
	ops := o.HeaderUp
	field, value := args[0], ""
	if len(args) > 1 {
		value = args[1]
	}
	check := func(name string, wildcard bool) error {
		if err := relayconfig.CheckHeaderField(name, wildcard); err != nil {
			return d.Errf("header_up: %v", err)
		}
		return nil
	}
	switch {
	case strings.HasPrefix(field, "+"):
		if err := check(field[1:], false); err != nil {
			return err
		}
		if ops.Add == nil {
			ops.Add = make(map[string][]string)
		}
		name := http.CanonicalHeaderKey(field[1:]) // as Caddy stores it
		ops.Add[name] = append(ops.Add[name], value)
	case strings.HasPrefix(field, "-"):
		if err := check(field[1:], true); err != nil {
			return err
		}
		ops.Delete = append(ops.Delete, field[1:])
	case strings.HasPrefix(field, "?"):
		return d.Errf("header_up: the default modifier '?' is for response headers; a request header is set or not")
	case len(args) == 3:
		name := strings.TrimLeft(field, "+-?>") // only > or nothing gets here; as Caddy trims
		if err := check(name, name == "*"); err != nil {
			return err
		}
		if ops.Replace == nil {
			ops.Replace = make(map[string][]relayconfig.Replacement)
		}
		ops.Replace[name] = append(ops.Replace[name], relayconfig.Replacement{SearchRegexp: value, Replace: args[2]})
		if err := ops.Validate(); err != nil { // the regexp
			return d.Errf("header_up: %v", err)
		}
	default: // set, with '>' too (deferring means nothing for a request)
		name := strings.TrimPrefix(field, ">")
		if err := check(name, false); err != nil {
			return err
		}
		if ops.Set == nil {
			ops.Set = make(map[string][]string)
		}
		ops.Set[http.CanonicalHeaderKey(name)] = []string{value}
	}
	return nil
}

// parseLBPolicy parses the policy whose name is the next argument, its
// arguments (a header field, a query key, weights, a count, a cookie's
// name and secret) and a block with its fallback (and a cookie's
// max_age), as reverse_proxy's lb_policy reads them.
func parseLBPolicy(d *caddyfile.Dispenser) (*relayconfig.LBPolicy, error) {
	line := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	if !slices.Contains(relayconfig.LBPolicies, args[0]) {
		return nil, d.Errf("%s: unknown policy '%s' (want one of: %s)", line, args[0], strings.Join(relayconfig.LBPolicies, ", "))
	}
	p := &relayconfig.LBPolicy{Policy: args[0]}
	args = args[1:]
	taken := 0 // of args
	switch p.Policy {
	case "header", "query":
		if len(args) > 0 {
			p.Field, taken = args[0], 1
			if p.Policy == "query" {
				p.Key, p.Field = p.Field, ""
			}
		}
	case "weighted_round_robin":
		if len(args) == 0 {
			return nil, d.Errf("%s: weighted_round_robin needs a weight for each upstream", line)
		}
		for _, a := range args {
			n, err := strconv.Atoi(a)
			if err != nil || n < 0 {
				return nil, d.Errf("%s: invalid weight '%s': want a whole number, 0 or more", line, a)
			}
			p.Weights = append(p.Weights, n)
		}
		taken = len(args)
	case "random_choose":
		if len(args) == 0 {
			return nil, d.Errf("%s: random_choose needs how many upstreams to choose from", line)
		}
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return nil, d.Errf("%s: invalid choice '%s': want a whole number", line, args[0])
		}
		p.Choose, taken = n, 1
	case "cookie":
		if len(args) > 0 {
			p.Name, taken = args[0], 1
		}
		if len(args) > 1 {
			p.Secret, taken = args[1], 2
		}
	}
	if len(args) > taken {
		if taken == 0 {
			return nil, d.Errf("%s: policy %s takes no argument, got '%s'", line, p.Policy, args[0])
		}
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "fallback":
			if p.Fallback != nil {
				return nil, d.Errf("%s: fallback given more than once", line)
			}
			if p.Policy != "header" && p.Policy != "query" && p.Policy != "cookie" {
				return nil, d.Errf("%s: only the header, query and cookie policies take a fallback", line)
			}
			fb, err := parseLBPolicy(d)
			if err != nil {
				return nil, err
			}
			p.Fallback = fb
		case "max_age":
			if p.Policy != "cookie" {
				return nil, d.Errf("%s: only the cookie policy takes max_age", line)
			}
			if p.MaxAge != 0 {
				return nil, d.Errf("%s: max_age given more than once", line)
			}
			val, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur <= 0 {
				return nil, d.Errf("%s: max_age: invalid duration '%s': want a positive one, like 24h", line, val)
			}
			p.MaxAge = caddy.Duration(dur)
		default:
			want := "fallback"
			if p.Policy == "cookie" {
				want = "fallback or max_age"
			}
			return nil, d.Errf("%s: unrecognized option '%s' (want %s)", line, d.Val(), want)
		}
	}
	if err := p.Validate(); err != nil {
		return nil, d.Errf("%s: %v", line, err)
	}
	return p, nil
}

// addUpstreams checks each address and appends it to o.Upstreams, so a
// bad address is reported at its Caddyfile line rather than at load time.
func addUpstreams(d *caddyfile.Dispenser, o *relayconfig.Options, addrs []string) error {
	for _, addr := range addrs {
		if _, err := relayconfig.ParseUpstream(addr); err != nil {
			return d.Errf("parsing upstream: %w", err)
		}
		o.Upstreams = append(o.Upstreams, addr)
	}
	return nil
}

// parseDurationOrOff parses `<name> <duration>|off`. Off is stored as a
// negative duration, which the module reads as "feature off" (no relay
// pings for ping_interval, all closes at once for drain_period).
func parseDurationOrOff(d *caddyfile.Dispenser, name string, field *caddy.Duration) error {
	val, err := oneArg(d)
	if err != nil {
		return err
	}
	if val == "off" {
		*field = -1
		return nil
	}
	dur, err := caddy.ParseDuration(val)
	if err != nil {
		return d.Errf("%s: parsing duration '%s': %w", name, val, err)
	}
	if dur <= 0 {
		return d.Errf("%s: %s is not a valid duration; use '%s off' to turn it off", name, val, name)
	}
	*field = caddy.Duration(dur)
	return nil
}

// positiveDuration reads the one argument of subdirective name as a
// duration greater than zero.
func positiveDuration(d *caddyfile.Dispenser, name string) (time.Duration, error) {
	val, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(val)
	if err != nil {
		return 0, d.Errf("%s: parsing duration '%s': %w", name, val, err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s: duration must be positive, got '%s'", name, val)
	}
	return dur, nil
}

// oneArg reads exactly one argument from the rest of the current line.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	val := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return val, nil
}

// errAt returns an error that names the file and line of tok, as
// Dispenser.Errf does for the current token.
func errAt(tok caddyfile.Token, format string, args ...any) error {
	d := caddyfile.NewDispenser([]caddyfile.Token{tok})
	d.Next()
	return d.Errf(format, args...)
}
