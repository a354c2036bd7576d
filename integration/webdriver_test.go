package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"testing"
	"time"
)

// chromiumFlags are the flags that work as root in a container here; the
// caller adds --user-data-dir and the certificate flag.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
	"--disable-background-networking", "--disable-component-update",
	"--disable-sync", "--no-first-run", "--disable-quic",
}

// webDriver is a session of chromedriver, spoken to through the W3C
// WebDriver HTTP API.
type webDriver struct {
	t       *testing.T
	base    string // http://127.0.0.1:<port>
	session string
	client  *http.Client
}

// startChromium starts chromedriver and a headless Chromium session with
// extra flags; cleanup ends both.
func startChromium(t *testing.T, extraFlags ...string) *webDriver {
	t.Helper()
	browser := lookTool(t, "chromium", "chromium-browser", "google-chrome")
	driverBin := lookTool(t, "chromedriver")
	port := freePort(t)
	cmd := exec.Command(driverBin, fmt.Sprintf("--port=%d", port))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromedriver: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	wd := &webDriver{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 60 * time.Second}}
	t.Cleanup(func() {
		if wd.session != "" {
			wd.call(http.MethodDelete, "/session/"+wd.session, nil, nil)
		}
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("chromedriver output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct {
			Ready bool `json:"ready"`
		}
		if err := wd.call(http.MethodGet, "/status", nil, &st); err == nil && st.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver not ready after 20s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	args := append(append([]string{}, chromiumFlags...), "--user-data-dir="+t.TempDir())
	args = append(args, extraFlags...)
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":        "chrome",
		"goog:chromeOptions": map[string]any{"binary": browser, "args": args},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := wd.call(http.MethodPost, "/session", caps, &sess); err != nil {
		t.Fatalf("creating a Chromium session: %v", err)
	}
	wd.session = sess.SessionID
	return wd
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

// Navigate loads url in the session's window.
func (wd *webDriver) Navigate(url string) {
	wd.t.Helper()
	if err := wd.call(http.MethodPost, "/session/"+wd.session+"/url", map[string]any{"url": url}, nil); err != nil {
		wd.t.Fatalf("navigating to %s: %v", url, err)
	}
}

// Exec runs script in the page and decodes what it returns into out.
func (wd *webDriver) Exec(script string, out any) {
	wd.t.Helper()
	in := map[string]any{"script": script, "args": []any{}}
	if err := wd.call(http.MethodPost, "/session/"+wd.session+"/execute/sync", in, out); err != nil {
		wd.t.Fatalf("executing %q: %v", script, err)
	}
}
