package upgrade

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// ErrBadHandshake marks a backend answer that is not a valid 101.
var ErrBadHandshake = errors.New("invalid handshake")

// ErrInvalidHost marks an upgrade request whose Host is not valid (a
// header_up placeholder put a line break or a path in it): not the
// backend's fault.
var ErrInvalidHost = errors.New("invalid Host")

// Max1xx is how many informational answers (103 Early Hints, ...) a
// backend may send before its real one, as in net/http's client.
const Max1xx = 5

// Exchange writes the upgrade request req through bw, then reads the
// backend's answer from br, past any informational (1xx) answers other
// than 101, which are dropped. A 101 must be a valid answer for key, the
// client's Sec-WebSocket-Key, and has no body: what the backend sent
// after its headers stays in br. Another final answer is returned with a
// nil error; its body is read through br.
func Exchange(bw *bufio.Writer, br *bufio.Reader, req *http.Request, key string) (*http.Response, error) {
	if err := writeRequest(bw, req); err != nil {
		return nil, fmt.Errorf("sending upgrade request: %w", err)
	}
	resp, err := readAnswer(br, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if err := checkAnswer(resp, key); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// readAnswer reads the backend's answer to the upgrade request, past any
// informational (1xx) answers other than 101, which are dropped.
func readAnswer(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, fmt.Errorf("reading upgrade response: %w", err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if n == Max1xx {
			return nil, fmt.Errorf("%w: more than %d informational answers", ErrBadHandshake, Max1xx)
		}
	}
}

// writeRequest writes the request line and headers of req and flushes
// them; an upgrade request has no body. The host goes in punycode, as
// net/http sends it; one that is empty or not a valid Host value (a
// placeholder may have put CR or LF in it) is an error, not a header
// written as it is.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	host, err := httpguts.PunycodeHostPort(req.Host) // as net/http sends it
	if err != nil || host == "" || !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("%w %q for the backend", ErrInvalidHost, req.Host)
	}
	fmt.Fprintf(bw, "GET %s HTTP/1.1\r\nHost: %s\r\n", req.URL.RequestURI(), host)
	// The WebSocket fields go in RFC 6455's spelling, as reverse_proxy
	// sends them: some backends compare names case-sensitively.
	for _, k := range rfcOrder {
		for _, v := range req.Header[k] {
			fmt.Fprintf(bw, "%s: %s\r\n", rfcNames[k], valueNewlines.Replace(strings.TrimSpace(v)))
		}
	}
	if err := req.Header.WriteSubset(bw, writtenApart); err != nil {
		return err
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// writtenApart are the fields writeRequest writes itself.
var writtenApart = map[string]bool{"Host": true}

// rfcOrder are the keys of rfcNames, in a fixed order.
var rfcOrder []string

func init() {
	for k := range rfcNames {
		writtenApart[k] = true
		rfcOrder = append(rfcOrder, k)
	}
	slices.Sort(rfcOrder)
}

// valueNewlines makes a field value one line, as http.Header.Write does.
var valueNewlines = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")

// checkAnswer checks a 101 answer (RFC 6455 4.1, client side).
func checkAnswer(resp *http.Response, key string) error {
	switch {
	case !httpguts.HeaderValuesContainsToken(resp.Header["Upgrade"], "websocket"):
		return fmt.Errorf("%w: 101 without Upgrade: websocket", ErrBadHandshake)
	case !httpguts.HeaderValuesContainsToken(resp.Header["Connection"], "upgrade"):
		return fmt.Errorf("%w: 101 without Connection: upgrade", ErrBadHandshake)
	case resp.Header.Get("Sec-WebSocket-Accept") != AcceptFor(key):
		return fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrBadHandshake)
	}
	return nil
}
