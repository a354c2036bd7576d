#!/usr/bin/env bash
# Installs what the test suite needs, when it is missing:
#   Debian packages: chromium, chromium-driver (headless browser tests),
#     nginx-light or nginx (an L7 hop in front of the relay), iproute2,
#     nftables, iptables, conntrack, procps (network namespaces and a real NAT),
#     nodejs and npm (the `ws` client tests), gcc and libc6-dev (cgo, which
#     -race needs);
#   npm packages of integration/node (npm ci, or npm install without a lock
#     file), when node_modules is missing or older than package.json or
#     package-lock.json.
# apt-get update runs once, only when a package is missing. As a user other
# than root (without password-less sudo) nothing is installed: what is
# missing is printed and the script goes on, except under CI=true, where
# anything missing at the end is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

ci="${CI:-false}"
missing=()

say() { echo "deps: $*"; }

# have CMD: is the command there (also in sbin dirs, absent from a user's PATH)?
have() {
	command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/sbin/$1" ]]
}

# as_root CMD...: runs CMD as root, directly or through password-less sudo.
as_root() {
	if [[ "$(id -u)" == 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		return 1
	fi
}

can_root() { [[ "$(id -u)" == 0 ]] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; }

# command the tests run -> Debian package that brings it
tools=(
	"chromium:chromium"
	"chromedriver:chromium-driver"
	"nginx:nginx-light"
	"ip:iproute2"
	"nft:nftables"
	"iptables:iptables"
	"conntrack:conntrack"
	"ss:iproute2"
	"sysctl:procps"
	"node:nodejs"
	"npm:npm"
	"gcc:gcc"
)

# cgo also needs the C library's headers, which Debian's gcc only recommends.
have_libc_dev() { [[ -e /usr/include/stdio.h ]]; }

want=()
for pair in "${tools[@]}"; do
	cmd="${pair%%:*}" pkg="${pair#*:}"
	have "$cmd" || want+=("$pkg")
done
have_libc_dev || want+=(libc6-dev)

install_packages() {
	local pkgs=("$@") policy_rc_added=""
	say "installing Debian packages: ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get update -qq || return 1
	# nginx-light is gone from newer Debian releases: fall back to nginx.
	local i
	for i in "${!pkgs[@]}"; do
		if [[ "${pkgs[$i]}" == nginx-light ]] && ! apt-cache show nginx-light >/dev/null 2>&1; then
			pkgs[i]=nginx
		fi
	done
	# Keep installed daemons (nginx) from starting: the tests start their own.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		as_root sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d' &&
			policy_rc_added=1
	fi
	local rc=0 pkg
	if ! as_root apt-get install -y -qq "${pkgs[@]}"; then
		# One bad package fails them all: retry one by one.
		for pkg in "${pkgs[@]}"; do
			as_root apt-get install -y -qq "$pkg" || rc=$?
		done
	fi
	if [[ -n "$policy_rc_added" ]]; then
		as_root rm -f /usr/sbin/policy-rc.d || true
	fi
	return "$rc"
}

if ((${#want[@]} > 0)); then
	if can_root; then
		install_packages "${want[@]}" || say "apt-get install failed"
	else
		say "not root and no password-less sudo: cannot install ${want[*]}"
	fi
	for pair in "${tools[@]}"; do
		cmd="${pair%%:*}" pkg="${pair#*:}"
		have "$cmd" || missing+=("$cmd (Debian package $pkg)")
	done
	have_libc_dev || missing+=("C headers (Debian package libc6-dev)")
fi

# npm packages of the Node.js test clients.
node_dir=integration/node
npm_stale() {
	local stamp="$node_dir/node_modules/.package-lock.json"
	[[ ! -e "$stamp" ]] && return 0
	[[ "$node_dir/package.json" -nt "$stamp" ]] && return 0
	[[ -e "$node_dir/package-lock.json" && "$node_dir/package-lock.json" -nt "$stamp" ]] && return 0
	return 1
}
if [[ -f "$node_dir/package.json" ]]; then
	if ! have npm; then
		missing+=("npm packages of $node_dir (npm itself is missing)")
	elif npm_stale; then
		if [[ -f "$node_dir/package-lock.json" ]]; then
			npm_cmd=(npm ci --no-audit --no-fund)
		else
			npm_cmd=(npm install --no-audit --no-fund)
		fi
		say "in $node_dir: ${npm_cmd[*]}"
		if ! (cd "$node_dir" && "${npm_cmd[@]}"); then
			missing+=("npm packages of $node_dir (${npm_cmd[*]} failed)")
		fi
	fi
fi

if ((${#missing[@]} > 0)); then
	for m in "${missing[@]}"; do
		say "missing: $m"
	done
	if [[ "$ci" == true ]]; then
		say "FAIL: CI=true and the tests need what is missing above" >&2
		exit 1
	fi
	say "going on without it; tests that need it will skip or fail"
	exit 0
fi
say "all test dependencies present"
