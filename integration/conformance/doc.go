// Package conformance checks that websocket_relay keeps RFC 6455 as strict
// backends keep it. Autobahn|Testsuite cannot run here, so its tests hold
// a Go harness modelled on Autobahn's case sections 1-7 (framing,
// pings and pongs, reserved bits, opcodes, fragmentation, UTF-8, closing):
// a raw client sends each case's frames and records what comes back, once
// directly against coder/websocket and gorilla/websocket echo servers and
// once through the real caddy with websocket_relay; a case that a backend
// passes directly must pass through the relay too. The tests print a case
// report and write it to $WSRELAY_CONFORMANCE_REPORT (default
// $TMPDIR/wsrelay-conformance-report.txt).
package conformance
