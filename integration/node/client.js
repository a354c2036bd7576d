'use strict';
// client.js: a Node ws client for the websocket_relay integration tests.
//
//   node client.js --url ws://host:port/path [--ca root.crt] [--idle seconds]
//
// It sends text and binary messages and wants each echoed back intact,
// stays idle for --idle seconds (answering pings, as ws does by itself),
// sends one more message, closes with 1000 "node done" and prints one JSON
// line: {ok, echoed, pings, closeCode, closeReason, errors}.
const fs = require('fs');
const crypto = require('crypto');
const WebSocket = require('ws');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? process.argv[i + 1] : def;
}

const url = arg('url');
const ca = arg('ca');
const idle = Number(arg('idle', '0'));
const result = { ok: false, echoed: 0, pings: 0, closeCode: 0, closeReason: '', errors: [] };

function finish(code) {
  result.ok = result.errors.length === 0 && code === 0;
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
}

const opts = {};
if (ca) opts.ca = fs.readFileSync(ca);
const ws = new WebSocket(url, opts);

const messages = [
  { data: 'hello from node', binary: false },
  { data: Buffer.alloc(0), binary: true },
  { data: crypto.randomBytes(125), binary: true },
  { data: crypto.randomBytes(126), binary: true },
  { data: crypto.randomBytes(65536), binary: true },
  { data: 'x'.repeat(70000), binary: false },
];
const after = { data: 'after idle', binary: false };
let expected = [];

function send(m) {
  expected.push(m);
  ws.send(m.data, { binary: m.binary });
}

ws.on('open', () => messages.forEach(send));

ws.on('ping', () => { result.pings++; });

ws.on('message', (data, isBinary) => {
  const want = expected.shift();
  if (!want) {
    result.errors.push('unexpected message of ' + data.length + ' bytes');
    return;
  }
  const wantBuf = Buffer.isBuffer(want.data) ? want.data : Buffer.from(want.data);
  if (isBinary !== want.binary || !Buffer.from(data).equals(wantBuf)) {
    result.errors.push('echo mismatch: got ' + data.length + ' bytes binary=' + isBinary +
      ', want ' + wantBuf.length + ' bytes binary=' + want.binary);
  }
  result.echoed++;
  if (result.echoed === messages.length) {
    setTimeout(() => send(after), idle * 1000);
  } else if (result.echoed === messages.length + 1) {
    ws.close(1000, 'node done');
  }
});

ws.on('close', (code, reason) => {
  result.closeCode = code;
  result.closeReason = reason.toString();
  finish(result.echoed === messages.length + 1 ? 0 : 1);
});

ws.on('unexpected-response', (req, res) => {
  result.errors.push('unexpected response ' + res.statusCode);
  finish(1);
});

ws.on('error', (err) => {
  result.errors.push(String(err && err.message || err));
});

setTimeout(() => {
  result.errors.push('timeout');
  finish(1);
}, (idle + 30) * 1000);
