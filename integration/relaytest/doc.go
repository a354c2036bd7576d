// Package relaytest is the harness that the end-to-end suites under
// integration/ share. It builds the real caddy binary once per test binary
// (with -race when the tests have it; [Main] builds at once, [RunLazy] on
// first use), runs it with a Caddyfile, reads its JSON log lines
// ([LogSink]) and its process figures (/proc and the admin metrics
// endpoint), and speaks WebSocket byte by byte as a client ([Client]) and
// as a backend ([Backend]), so that a test can send frames that no library
// would send and see every frame that comes back. It also drives headless
// Chromium through chromedriver ([WebDriver]) and stops a test that lacks
// a tool: a skip, or a failure under CI=true ([Unavailable], [LookTool]).
package relaytest
