#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a while each.
#
#   scripts/fuzz.sh [FUZZTIME]    FUZZTIME as for go test -fuzztime, default 5s
#
# Targets are found with `go test -list` in the packages whose tests declare
# a Fuzz function. Inputs that make a target fail are written by go test to
# the package's testdata/fuzz/<Target>/ (commit them as regression cases);
# the generated corpus stays in go's cache.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${1:-${FUZZTIME:-5s}}"

# Directories with a _test.go file that declares a fuzz target.
mapfile -t dirs < <(grep -rlE --include='*_test.go' --exclude-dir=node_modules --exclude-dir=.git \
	'^func Fuzz[A-Z0-9_]' . | xargs -r -n1 dirname | sort -u)

count=0
for dir in "${dirs[@]}"; do
	pkg="$(go list "$dir")"
	mapfile -t targets < <(go test -list '^Fuzz' "$pkg" | grep -E '^Fuzz' || true)
	for target in "${targets[@]}"; do
		echo "fuzz: $pkg $target for $fuzztime"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
		count=$((count + 1))
	done
done
echo "fuzz: $count targets ran for $fuzztime each"
