# websocket_relay: build, demo and test. Run `make help` for the targets.
SHELL := /bin/bash
GO ?= go

# Every go command here builds with xcaddy's default flags (-trimpath and
# the tags that leave out Caddy's unused database drivers), and the tests
# and vet with -race: so vet, the race tests, the caddy binaries the
# integration tests build and xcaddy-check (xcaddy with its race detector
# on) compile Caddy's ~1,000 packages for Linux once between them, not
# three times (the vet for windows builds its own; the fuzz targets, whose
# packages import at most Caddy's core and Caddyfile packages, instrument
# ~345 packages): on a cold build cache that was most of `make test`'s time.
# A GOFLAGS from the environment is kept as it is; one set with `go env -w`
# is kept and added to.
ifeq ($(origin GOFLAGS),undefined)
GOFLAGS := $(strip $(shell $(GO) env GOFLAGS) -trimpath -tags=nobadger,nomysql,nopgx)
endif
export GOFLAGS

.PHONY: help deps build demo test vet unit fuzz-short fuzz soak xcaddy-check clean

help:
	@echo "make demo          build bin/caddy and run the demo on http://localhost:8080/"
	@echo "make test          deps, go vet, go test -race, 5s per fuzz target, xcaddy check"
	@echo "make build         build bin/caddy (Caddy's standard modules + this plugin)"
	@echo "make deps          install the test dependencies (Debian and npm packages)"
	@echo "make fuzz          60s per fuzz target"
	@echo "make soak          1,000 ws and 1,000 wss connections for 10 min, every message checked"
	@echo "make bench         relay vs stock reverse_proxy vs nginx vs direct (~10 min)"
	@echo "make xcaddy-check  build with xcaddy and check the binary (~2 min)"

deps:
	bash scripts/deps.sh

build:
	$(GO) build -o bin/caddy ./cmd/caddy

demo: build
	./bin/caddy websocket-relay --from localhost:8080

test: deps vet unit fuzz-short xcaddy-check

# The plugin must build wherever Caddy does; the tests and tools are Linux-only.
# Only the engine has files for some systems and not others (build tags): it
# is checked for each kind (windows, other unix). The rest has none, so one
# system that is not Linux, windows, checks it all against the engine's API
# there (with the engine itself): that costs a full build of Caddy's
# packages for windows on a cold cache (~2 min here); the engine alone, for
# another system, ~20 s.
# On Linux, -race: the packages compiled for vet are the race tests' own.
vet:
	$(GO) vet -race ./...
	for os in darwin freebsd; do GOOS=$$os $(GO) vet ./module/engine/... ./module/keepalive/... || exit 1; done
	GOOS=windows $(GO) vet ./module/... ./caddyfile/... ./cmd/caddy ./cmd/relaycmd

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

fuzz-short:
	bash scripts/fuzz.sh 5s

fuzz:
	bash scripts/fuzz.sh 60s

# 1,000 connections over ws and 1,000 over wss for 10 minutes, every
# message checked. One leg: make soak WSRELAY_SOAK_LEGS=ws (or wss).
soak:
	bash scripts/soak.sh

xcaddy-check:
	bash scripts/xcaddy-check.sh

clean:
	rm -rf bin

.PHONY: bench bench-quick

# Side by side in one run: websocket_relay, stock reverse_proxy, nginx and a
# direct connection (about 8 min on 2 cores). Writes docs/perf/results.md and chart.svg.
bench: build
	$(GO) build -o bin/wsbench ./cmd/wsbench
	./bin/wsbench -caddy bin/caddy -out docs/perf -via "make bench"

# Smoke run of the same (1 round, 1,000 idle connections); results in bin/perf-quick.
bench-quick: build
	$(GO) build -o bin/wsbench ./cmd/wsbench
	./bin/wsbench -quick -caddy bin/caddy -out bin/perf-quick -via "make bench-quick"
