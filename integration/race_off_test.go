//go:build !race

package integration

// raceEnabled reports whether this test binary was built with -race, so
// that the caddy under test is built the same way.
const raceEnabled = false
