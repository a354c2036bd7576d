// Package relaytest is the harness that the reliability and conformance
// suites share. It builds the real caddy binary once per test binary (with
// -race when the tests have it), runs it with a Caddyfile, reads its JSON
// log lines and its process figures (/proc and the admin metrics
// endpoint), and speaks WebSocket byte by byte as a client ([Client]) and
// as a backend ([Backend]), so that a test can send frames that no library
// would send and see every frame that comes back.
package relaytest
