#!/usr/bin/env bash
# The long form of the reliability soak: 1,000 connections through the
# real caddy for 10 minutes on each client leg, every message checked byte
# for byte and in order, then caddy's goroutines, descriptors and heap
# checked against their starting figures (the heap after the runtime's
# forced collection).
#
#   scripts/soak.sh [DURATION] [CONNS] [LEGS]    defaults 10m, 1000 and ws,wss
#
# LEGS (or WSRELAY_SOAK_LEGS) is ws, wss or ws,wss: plain ws, whose idle
# relays the engine's event loops serve, and wss (TLS), which goroutines
# serve. Both legs run at the same time, each with its own caddy, backend
# and checks, so CONNS connections per leg. For example, ws alone for 3
# minutes:
#
#   scripts/soak.sh 3m 1000 ws
#
# The pace (mean pause between two messages of a sender) is measured for
# the machine first; WSRELAY_SOAK_PACE sets it instead. With
# WSRELAY_SOAK_PROFILES=<dir>, caddy's heap and goroutine profiles from
# before and after the soak are written there, for `go tool pprof
# -diff_base` (GODEBUG=memprofilerate=8192 samples the heap more finely).
#
# It runs the same test as `go test` (TestSoak in integration/reliability,
# subtests TestSoak/ws and TestSoak/wss), with -race like `make test`, and
# prints its figures.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-${WSRELAY_SOAK_DURATION:-10m}}"
conns="${2:-${WSRELAY_SOAK_CONNS:-1000}}"
legs="${3:-${WSRELAY_SOAK_LEGS:-ws,wss}}"

case "$legs" in
ws | wss | ws,wss | wss,ws) ;;
*)
	echo "soak: legs must be ws, wss or ws,wss, not '$legs'" >&2
	exit 2
	;;
esac

echo "soak: ${conns} connections for ${duration} on each of: ${legs}"
WSRELAY_SOAK_DURATION="$duration" WSRELAY_SOAK_CONNS="$conns" WSRELAY_SOAK_LEGS="$legs" \
	go test -race -count=1 -v -run '^TestSoak$' -timeout 60m ./integration/reliability/
