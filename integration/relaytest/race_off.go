//go:build !race

package relaytest

// RaceEnabled reports whether the tests were built with -race, so that
// the caddy under test is built the same way.
const RaceEnabled = false
