package relaycmd

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/gobwas/ws"
)

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf(
			"finding a free port: %v",
			err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// runCaddy runs the config the command would build for o, with logs
// discarded, until the test ends.
func runCaddy(t *testing.T, o options) {
	t.Helper()
	cfg, _, err := buildConfig(o)
	if err != nil {
		t.Fatalf(
			"buildConfig: %v",
			err)
	}
	cfg.Logging = &caddy.Logging{Logs: map[string]*caddy.CustomLog{
		"default": {BaseLog: caddy.BaseLog{WriterRaw: []byte(`{"output":"discard"}`)}},
	}}
	if err := caddy.Run(cfg); err != nil {
		t.Fatalf(
			"caddy.Run: %v",
			err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf(
			"GET %s: %v",
			url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf(
			"reading %s: %v",
			url, err)
	}
	return resp, string(body)
}

func TestDemoServesPageAndEcho(t *testing.T) {
	echo := startEcho(t)
	addr := freeAddr(t)
	runCaddy(t, options{From: addr, EchoAddr: echo.Addr()})

	resp, body := get(t, "http://"+addr+"/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf(
			"GET / = %d %s, want 200 text/html",
			resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if body != demoPage {
		t.Errorf("GET / body differs from demo.html (placeholders replaced?)")
	}
	if resp, _ := get(t, "http://"+addr+"/elsewhere"); resp.StatusCode != http.StatusNotFound {
		t.Errorf(
			"GET /elsewhere = %d, want 404",
			resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws://"+addr+"/")
	if err != nil {
		t.Fatalf(
			"dialing the relay: %v",
			err)
	}
	c := &wsClient{t: t, conn: conn, r: conn}
	if br != nil {
		c.r = io.MultiReader(br, conn)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c.send(true, ws.OpText, []byte("hello through the relay"))
	if op, payload, _ := c.readMessage(); op != ws.OpText || string(payload) != "hello through the relay" {
		t.Errorf(
			"echo = %v %q, want the text sent",
			op, payload)
	}
	c.send(true, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "done"))
	c.expectClose(ws.StatusNormalClosure, "done")
}

func TestRelayOnlyAnswers426(t *testing.T) {
	echo := startEcho(t)
	addr := freeAddr(t)
	runCaddy(t, options{From: "http://" + addr, To: []string{echo.Addr()}})

	resp, _ := get(t, "http://"+addr+"/")
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") != "websocket" {
		t.Errorf(
			"GET / = %d Upgrade: %q, want 426 Upgrade: websocket",
			resp.StatusCode, resp.Header.Get("Upgrade"))
	}
}
