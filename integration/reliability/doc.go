// Package reliability holds the suite that nothing gets through: the real
// caddy binary with websocket_relay, driven by raw TCP clients and raw
// backends that break RFC 6455 on purpose, hostile and broken clients
// (slow handshakes, half-open floods, mid-frame stalls, floods, mass
// disappearance), failing backends, and a soak over wss that checks every
// byte and then that caddy gave back its goroutines, descriptors and heap.
//
// The short forms run in `go test` (`make test`); the soak's long form runs
// with WSRELAY_SOAK_DURATION and WSRELAY_SOAK_CONNS (scripts/soak.sh).
// TestMain builds ./cmd/caddy once, with -race when the tests have it.
package reliability
