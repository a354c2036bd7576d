package integration

import (
	"bytes"
	"fmt"
	"os/exec"
	"testing"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// webDriver is a session of chromedriver (rt.WebDriver) whose page
// commands fail the test when they fail.
type webDriver struct {
	t *testing.T
	*rt.WebDriver
}

// startChromium starts chromedriver and a headless Chromium session with
// extra flags; cleanup ends both.
func startChromium(t *testing.T, extraFlags ...string) *webDriver {
	t.Helper()
	browser := rt.LookTool(t, "chromium", "chromium-browser", "google-chrome")
	driverBin := rt.LookTool(t, "chromedriver")
	port := freePort(t)
	cmd := exec.Command(driverBin, fmt.Sprintf("--port=%d", port))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromedriver: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	wd := &webDriver{t: t, WebDriver: rt.NewWebDriver(port)}
	t.Cleanup(func() {
		wd.Quit()
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("chromedriver output:\n%s", out.String())
		}
	})
	if err := wd.WaitReady(20 * time.Second); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	flags := append([]string{"--user-data-dir=" + t.TempDir()}, extraFlags...)
	if err := wd.NewSession(browser, flags...); err != nil {
		t.Fatalf("creating a Chromium session: %v", err)
	}
	return wd
}

// Navigate loads url in the session's window.
func (wd *webDriver) Navigate(url string) {
	wd.t.Helper()
	if err := wd.WebDriver.Navigate(url); err != nil {
		wd.t.Fatalf("navigating to %s: %v", url, err)
	}
}

// Exec runs script in the page and decodes what it returns into out.
func (wd *webDriver) Exec(script string, out any) {
	wd.t.Helper()
	if err := wd.WebDriver.Exec(script, out); err != nil {
		wd.t.Fatalf("executing %q: %v", script, err)
	}
}
