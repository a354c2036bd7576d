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

# inputs DIR prints how many inputs a target's testdata corpus holds.
inputs() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }

count=0
for dir in "${dirs[@]}"; do
	pkg="$(go list "$dir")"
	# -race: the list's test binary then reuses the race tests' packages;
	# without it, a cold build cache compiles them all once more.
	list="$(go test -race -list '^Fuzz' "$pkg")" # a failure here stops the script
	mapfile -t targets < <(grep -E '^Fuzz' <<<"$list" || true)
	if [ "${#targets[@]}" = 0 ]; then
		echo "fuzz: $pkg declares a fuzz target but go test lists none" >&2
		exit 1
	fi
	for target in "${targets[@]}"; do
		echo "fuzz: $pkg $target for $fuzztime"
		corpus="$dir/testdata/fuzz/$target"
		before="$(inputs "$corpus")"
		log="$(mktemp)"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
			# Go 1.26's fuzz coordinator can fail a target with a bare
			# "context deadline exceeded" as -fuzztime runs out, with no
			# failing input (go.dev/issue/75804, fixed in Go 1.27). Only
			# that failure, with no new input written, is run again, once.
			after="$(inputs "$corpus")"
			if [ "$after" = "$before" ] && tail -n 5 "$log" | grep -qx '    context deadline exceeded'; then
				echo "fuzz: $target hit go.dev/issue/75804 (no failing input); running it again"
				go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
			else
				rm -f "$log"
				exit 1
			fi
		fi
		rm -f "$log"
		count=$((count + 1))
	done
done
if [ "$count" = 0 ]; then
	echo "fuzz: found no fuzz target" >&2
	exit 1
fi
echo "fuzz: $count targets ran for $fuzztime each"
