package netlab

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	rt "github.com/websocket-relay/websocket_relay/integration/relaytest"
)

// driverPort is chromedriver's port on the loopback of the client
// namespace; every lab has its own loopback, so one fixed port serves all.
const driverPort = 9515

// browserRole runs chromedriver and headless Chromium (rt.ChromiumFlags,
// which work as root here; see NETLAB.md) inside the client namespace and
// drives them through the W3C WebDriver HTTP API (rt.WebDriver) on the
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
	wd := rt.NewWebDriver(driverPort)
	if err := wd.WaitReady(20 * time.Second); err != nil {
		return err
	}
	if err := wd.NewSession(cfg.Chromium, "--user-data-dir="+cfg.UserDataDir); err != nil {
		return fmt.Errorf("creating a Chromium session: %w", err)
	}
	defer wd.Quit()
	if err := wd.Navigate(cfg.URL); err != nil {
		return fmt.Errorf("loading %s: %w", cfg.URL, err)
	}
	out.emit(event{Ev: "ready"})
	for cmd := range cmds {
		switch cmd[0] {
		case "state":
			var st json.RawMessage
			if err := wd.Exec("return window.state;", &st); err != nil {
				return fmt.Errorf("reading window.state: %w", err)
			}
			out.emit(event{Ev: "state", State: st})
		default:
			out.emit(event{Ev: "error", Err: "unknown command " + cmd[0]})
		}
	}
	return nil
}
