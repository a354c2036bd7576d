package netlab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// chromiumFlags are the flags that work as root here (NETLAB.md), with
// QUIC off so that the page talks TCP like the WebSocket does.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
	"--disable-background-networking", "--disable-component-update",
	"--disable-sync", "--no-first-run", "--disable-quic",
}

// driverPort is chromedriver's port on the loopback of the client
// namespace; every lab has its own loopback, so one fixed port serves all.
const driverPort = 9515

// browserRole runs chromedriver and headless Chromium inside the client
// namespace and drives them through the W3C WebDriver HTTP API on the
// namespace's loopback: it loads cfg.URL and then reports the page's
// window.state on request.
//
// Events: ready, state (state: window.state as JSON).
// Commands: state.
func runBrowser(cfg roleConfig, out *emitter, cmds <-chan [2]string) error {
	logPath := filepath.Join(cfg.UserDataDir, "..", "chromedriver.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// chromedriver and Chromium write to a file, not to this role's
	// stdout, so they cannot hold its pipe open.
	driver := exec.Command(cfg.ChromeDriver, fmt.Sprintf("--port=%d", driverPort))
	driver.Stdout, driver.Stderr = logFile, logFile
	if err := driver.Start(); err != nil {
		return fmt.Errorf("starting chromedriver: %w", err)
	}
	defer func() {
		driver.Process.Kill()
		driver.Wait()
	}()
	wd := &webDriver{base: fmt.Sprintf("http://127.0.0.1:%d", driverPort), client: &http.Client{Timeout: 60 * time.Second}}
	if err := wd.waitReady(20 * time.Second); err != nil {
		return err
	}
	args := append(append([]string{}, chromiumFlags...), "--user-data-dir="+cfg.UserDataDir)
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":        "chrome",
		"goog:chromeOptions": map[string]any{"binary": cfg.Chromium, "args": args},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := wd.call(http.MethodPost, "/session", caps, &sess); err != nil {
		return fmt.Errorf("creating a Chromium session: %w", err)
	}
	wd.session = "/session/" + sess.SessionID
	defer wd.call(http.MethodDelete, wd.session, nil, nil)
	if err := wd.call(http.MethodPost, wd.session+"/url", map[string]any{"url": cfg.URL}, nil); err != nil {
		return fmt.Errorf("loading %s: %w", cfg.URL, err)
	}
	out.emit(event{Ev: "ready"})
	for cmd := range cmds {
		switch cmd[0] {
		case "state":
			var st json.RawMessage
			in := map[string]any{"script": "return window.state;", "args": []any{}}
			if err := wd.call(http.MethodPost, wd.session+"/execute/sync", in, &st); err != nil {
				return fmt.Errorf("reading window.state: %w", err)
			}
			out.emit(event{Ev: "state", State: st})
		default:
			out.emit(event{Ev: "error", Err: "unknown command " + cmd[0]})
		}
	}
	return nil
}

// webDriver speaks the W3C WebDriver HTTP API to chromedriver.
type webDriver struct {
	base    string
	session string // "/session/<id>"
	client  *http.Client
}

func (wd *webDriver) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var st struct {
			Ready bool `json:"ready"`
		}
		err := wd.call(http.MethodGet, "/status", nil, &st)
		if err == nil && st.Ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chromedriver not ready after %v: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call sends one WebDriver command and decodes its "value" into out.
func (wd *webDriver) call(method, path string, in, out any) error {
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
	if err := json.Unmarshal(raw, &env); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}
