#!/usr/bin/env bash
# Checks that the plugin builds the way its users build it:
#   xcaddy build --with github.com/websocket-relay/websocket_relay
# (with xcaddy's race detector on, below)
# then that the binary has the handler module, adapts a Caddyfile that uses
# the websocket_relay directive beside reverse_proxy without an `order`
# line, has the websocket-relay command, and serves its demo page.
#
# The module is built from this work tree (the =<dir> replacement). xcaddy
# needs an explicit version for it: the module proxy answers 403 for a
# module that is not published. Takes about two minutes on a cold build
# cache.
#
# xcaddy's race detector is on (XCADDY_RACE_DETECTOR=1, unless set
# otherwise): its build is then `go build -ldflags "-w -s" -trimpath -tags
# nobadger,nomysql,nopgx -race`, xcaddy's release flags plus -race, which
# under `make test` (GOFLAGS -trimpath and the same tags, race tests)
# reuses the packages the tests compiled instead of building Caddy again.
set -euo pipefail
export XCADDY_RACE_DETECTOR="${XCADDY_RACE_DETECTOR-1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

XCADDY_VERSION="${XCADDY_VERSION:-v0.4.5}"
CADDY_VERSION="${CADDY_VERSION:-v2.11.9}"
MODULE=github.com/websocket-relay/websocket_relay

tmp="$(mktemp -d "${TMPDIR:-/tmp}/xcaddy-check.XXXXXX")"
demo_pid=""
cleanup() {
	if [[ -n "$demo_pid" ]]; then
		kill "$demo_pid" 2>/dev/null || true
		wait "$demo_pid" 2>/dev/null || true
	fi
	# go's module cache marks files read-only; make them removable.
	chmod -R u+w "$tmp" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "xcaddy-check: FAIL: $*" >&2
	exit 1
}

echo "xcaddy-check: building caddy $CADDY_VERSION with $MODULE from $root (xcaddy $XCADDY_VERSION)"
# xcaddy makes its build folder under TMPDIR; keep it inside $tmp so it is
# removed with it whatever happens.
mkdir -p "$tmp/build"
TMPDIR="$tmp/build" go run "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION" \
	build "$CADDY_VERSION" \
	--with "$MODULE@v0.0.0=$root" \
	--output "$tmp/caddy"
caddy="$tmp/caddy"

modules="$("$caddy" list-modules)"
grep -qx 'http.handlers.websocket_relay' <<<"$modules" ||
	fail "list-modules does not list http.handlers.websocket_relay"
echo "xcaddy-check: ok: list-modules has http.handlers.websocket_relay"

cat >"$tmp/Caddyfile" <<'CADDYFILE'
app.example.com {
	reverse_proxy localhost:3000
	websocket_relay /ws/* localhost:3001 ws://localhost:3002/socket {
		ping_interval 30s
		pong_timeout 10s
	}
}
CADDYFILE
adapted="$("$caddy" adapt --config "$tmp/Caddyfile" --adapter caddyfile 2>"$tmp/adapt.log")" ||
	{ cat "$tmp/adapt.log" >&2; fail "caddy adapt of a Caddyfile with websocket_relay failed"; }
relay_at="$(grep -bo '"handler":"websocket_relay"' <<<"$adapted" | head -n1 | cut -d: -f1)"
proxy_at="$(grep -bo '"handler":"reverse_proxy"' <<<"$adapted" | head -n1 | cut -d: -f1)"
[[ -n "$relay_at" && -n "$proxy_at" ]] ||
	fail "adapted config lacks websocket_relay or reverse_proxy: $adapted"
((relay_at < proxy_at)) ||
	fail "websocket_relay is not ordered before reverse_proxy: $adapted"
echo "xcaddy-check: ok: caddy adapt orders websocket_relay before reverse_proxy without an order line"

help="$("$caddy" help websocket-relay)" || fail "caddy help websocket-relay failed"
grep -q -- '--from' <<<"$help" || fail "caddy help websocket-relay does not describe --from: $help"
echo "xcaddy-check: ok: caddy help websocket-relay"

# The demo: the command serves its page on a free loopback port.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo 18080)"
"$caddy" websocket-relay --from "127.0.0.1:$port" >"$tmp/demo.log" 2>&1 &
demo_pid=$!
page=""
for _ in $(seq 1 50); do
	if page="$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null)"; then
		break
	fi
	kill -0 "$demo_pid" 2>/dev/null || break
	sleep 0.2
done
grep -q 'websocket_relay demo' <<<"$page" ||
	{ cat "$tmp/demo.log" >&2; fail "caddy websocket-relay did not serve its demo page on 127.0.0.1:$port"; }
echo "xcaddy-check: ok: caddy websocket-relay serves the demo page"

echo "xcaddy-check: passed"
