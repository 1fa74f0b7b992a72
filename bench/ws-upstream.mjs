// SPDX-License-Identifier: Apache-2.0
// The WebSocket upstream of bench/run.sh's tunnel pass: on 127.0.0.1, a free port, it echoes every
// message back on its connection; a plain GET answers 200 "ok" (the bench waits for it). Prints its
// port on one line once it listens.
// Usage: node ws-upstream.mjs
import http from 'node:http';
import { WebSocketServer } from '../tests/e2e/node_modules/ws/wrapper.mjs';

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('ok');
});
server.maxConnections = Infinity;
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, binary) => ws.send(data, { binary }));
  ws.on('error', () => {});
});
server.listen(0, '127.0.0.1', 1024, () => console.log(server.address().port));
