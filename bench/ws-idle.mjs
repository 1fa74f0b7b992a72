// SPDX-License-Identifier: Apache-2.0
// The client of bench/run.sh's tunnel pass: opens N WebSocket connections to URL (with the session
// cookie, when given), BATCH at a time, each of which must get its 101 and then the echo of one
// message; it keeps those open and idle. Stops opening once TIMEOUT seconds have passed (a handshake
// gets 15 s). Then prints one line:
//   tried ok failed reasons
// (tried: connections attempted; ok: got the 101 and the echo, and still open; failed: those that
// did not; reasons: why, "status-302:3,..." or "-") and waits, the tunnels idle, until SIGTERM; then prints how many were still open, closes
// them and exits.
// Usage: node ws-idle.mjs URL N [COOKIE [TIMEOUT [BATCH]]]
import WebSocket from '../tests/e2e/node_modules/ws/wrapper.mjs';

const [url, nArg, cookie = '', timeoutArg = '120', batchArg = '250'] = process.argv.slice(2);
const n = Number(nArg);
const batch = Number(batchArg);
const deadline = Date.now() + Number(timeoutArg) * 1000;
const open = new Set();
const reasons = new Map();
let failed = 0;
let tried = 0;

function one(i) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, {
      headers: cookie ? { Cookie: cookie } : {},
      perMessageDeflate: false,
      handshakeTimeout: 15000,
    });
    let done = false;
    const finish = (good, reason) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (good) {
        open.add(ws);
      } else {
        failed++;
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        ws.terminate();
      }
      resolve();
    };
    const timer = setTimeout(() => finish(false, 'timeout'), 15000);
    ws.on('unexpected-response', (_req, res) => finish(false, `status-${res.statusCode}`));
    ws.on('open', () => ws.send(`echo ${i}`));
    ws.on('message', (data) => finish(String(data) === `echo ${i}`, 'wrong-echo'));
    ws.on('error', (e) => finish(false, e.code ?? 'error'));
    ws.on('close', () => {
      open.delete(ws);
      finish(false, 'closed');
    });
  });
}

for (let first = 0; first < n && Date.now() < deadline; first += batch) {
  const jobs = [];
  for (let i = first; i < Math.min(n, first + batch); i++, tried++) jobs.push(one(i));
  await Promise.all(jobs);
}
const why = [...reasons].map(([r, c]) => `${r}:${c}`).join(',') || '-';
console.log(`${tried} ${open.size} ${failed} ${why}`);
setInterval(() => {}, 1 << 30); // alive until SIGTERM, even with nothing open
process.on('SIGTERM', () => {
  console.log(open.size);
  for (const ws of open) ws.terminate();
  process.exit(0);
});
