// Package upgrade holds the HTTP side of a WebSocket upgrade, as the relay
// sees it from both ends (RFC 6455 4): the checks of a client's upgrade
// request, and the relay's own upgrade request to a backend and the checks
// of the backend's answer. It knows nothing of Caddy, so its fuzz targets
// build without Caddy's packages.
package upgrade
