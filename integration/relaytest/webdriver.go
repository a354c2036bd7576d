package relaytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ChromiumFlags are the flags of headless Chromium that work as root in a
// container here, with QUIC off so that a page talks TCP like its
// WebSocket does; the caller adds --user-data-dir and its own.
var ChromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
	"--disable-background-networking", "--disable-component-update",
	"--disable-sync", "--no-first-run", "--disable-quic",
}

// WebDriver speaks the W3C WebDriver HTTP API to a chromedriver at
// http://127.0.0.1:<port>. It needs no testing.T, so that a helper
// process can use it too.
type WebDriver struct {
	base    string
	session string // "/session/<id>" once NewSession succeeded
	client  *http.Client
}

// NewWebDriver returns a client of the chromedriver on port.
func NewWebDriver(port int) *WebDriver {
	return &WebDriver{base: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 60 * time.Second}}
}

// WaitReady polls /status until chromedriver is ready, for d at most.
func (wd *WebDriver) WaitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var st struct {
			Ready bool `json:"ready"`
		}
		err := wd.Call(http.MethodGet, "/status", nil, &st)
		if err == nil && st.Ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chromedriver not ready after %v: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// NewSession starts the Chromium binary with ChromiumFlags and args.
func (wd *WebDriver) NewSession(binary string, args ...string) error {
	args = append(append([]string{}, ChromiumFlags...), args...)
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":        "chrome",
		"goog:chromeOptions": map[string]any{"binary": binary, "args": args},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := wd.Call(http.MethodPost, "/session", caps, &sess); err != nil {
		return err
	}
	wd.session = "/session/" + sess.SessionID
	return nil
}

// Quit ends the session, if there is one.
func (wd *WebDriver) Quit() {
	if wd.session != "" {
		wd.Call(http.MethodDelete, wd.session, nil, nil)
	}
}

// Navigate loads url in the session's window.
func (wd *WebDriver) Navigate(url string) error {
	return wd.Call(http.MethodPost, wd.session+"/url", map[string]any{"url": url}, nil)
}

// Exec runs script in the page and decodes what it returns into out.
func (wd *WebDriver) Exec(script string, out any) error {
	in := map[string]any{"script": script, "args": []any{}}
	return wd.Call(http.MethodPost, wd.session+"/execute/sync", in, out)
}

// Call sends one WebDriver command and decodes its "value" into out.
func (wd *WebDriver) Call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, wd.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := wd.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, env.Value)
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}
