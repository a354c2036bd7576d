'use strict';
// server.js: a Node ws echo backend for the websocket_relay integration
// tests.
//
//   node server.js
//
// It listens on 127.0.0.1 on a free port, prints {"event":"listening",
// "port":N}, echoes every message with its type, and prints one JSON line
// per event: connection (url, headers), ping, pong, close (code, reason).
// It exits when its stdin closes.
const WebSocket = require('ws');

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, perMessageDeflate: false });

wss.on('listening', () => emit({ event: 'listening', port: wss.address().port }));

wss.on('connection', (ws, req) => {
  emit({ event: 'connection', url: req.url, headers: req.headers });
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('ping', (data) => emit({ event: 'ping', data: data.toString() }));
  ws.on('pong', (data) => emit({ event: 'pong', data: data.toString() }));
  ws.on('close', (code, reason) => emit({ event: 'close', code, reason: reason.toString() }));
  ws.on('error', (err) => emit({ event: 'error', message: String(err && err.message || err) }));
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
