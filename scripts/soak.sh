#!/usr/bin/env bash
# The long form of the reliability soak: 1,000 wss connections through the
# real caddy for 10 minutes, every message checked byte for byte and in
# order, then caddy's goroutines, descriptors and heap checked against
# their starting figures (the heap after the runtime's forced collection).
#
#   scripts/soak.sh [DURATION] [CONNS]    defaults 10m and 1000
#
# It runs the same test as `go test` (TestSoak in integration/reliability),
# with -race like `make test`, and prints its figures.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-${WSRELAY_SOAK_DURATION:-10m}}"
conns="${2:-${WSRELAY_SOAK_CONNS:-1000}}"

echo "soak: ${conns} connections for ${duration}"
WSRELAY_SOAK_DURATION="$duration" WSRELAY_SOAK_CONNS="$conns" \
	go test -race -count=1 -v -run '^TestSoak$' -timeout 60m ./integration/reliability/
