// Headless-Chromium test of the page over WebTransport, against a real server binary started
// with --webtransport: one user on WebTransport and one on WebSocket chat both ways, the
// indicator shows the transport and a round trip, and a normal close (DISCONNECT, then the
// page's close) resolves `WebTransport.closed` with code 0 instead of rejecting; so does the
// server shutting down (SIGTERM: an ERROR, the end of the stream, the page's close). A second
// server runs with --wt-streams per-subscription: one WebTransport user chats there, its
// MESSAGEs coming on the server's unidirectional streams.
//
// Chromium needs no flag here: the page fetches GET /webtransport and passes the self-signed
// certificate's hash as serverCertificateHashes, which Chromium accepts for an ECDSA P-256
// certificate valid for at most 14 days (what the server makes).
//
//   RTCHAT_SERVER_BIN, CHROMIUM_PATH: as for chat.test.mjs. Run: scripts/browser-test.sh
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LISTENING, capLog, launchChromium, spawnServer } from './harness.mjs';

const WAIT = 15_000;
const WHOLE_RUN = 90_000;

let servers = [];
let serverLog = '';
let baseUrl = '';
let perSubscriptionUrl = '';
let browser = null;

function killServer() {
  for (const server of servers) {
    if (server.exitCode === null && server.signalCode === null) {
      try { server.kill('SIGKILL'); } catch { /* already gone */ }
    }
  }
}
process.on('exit', killServer);
const watchdog = setTimeout(async () => {
  console.error(`webtransport browser test: over ${WHOLE_RUN} ms, giving up\n--- server output ---\n${serverLog}`);
  killServer();
  try { await browser?.close(); } catch { /* ignore */ }
  process.exit(1);
}, WHOLE_RUN);
watchdog.unref();

/** Starts a server with WebTransport on; resolves with its page's URL once both listen. */
async function startServer(extraArgs = []) {
  const started = spawnServer(['--bind', '127.0.0.1:0', '--webtransport', '127.0.0.1:0',
    '--jwt-secret', 'rtchat-wt-browser-test-secret-0123456789', '--store', 'memory', ...extraArgs], {
    patterns: [LISTENING, /rtchat WebTransport on https:\/\/127\.0\.0\.1:\d+\/stomp/],
    onOutput: (text) => { serverLog = capLog(serverLog + text); },
  });
  if (started.child) servers.push(started.child);
  const [url] = await started.ready;
  return url;
}

/** A new person with their own storage, on the page with `?transport=<setting>`. */
async function newUser(label, setting, url = baseUrl) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  await page.goto(`${url}/?transport=${setting}`, { timeout: WAIT });
  await page.waitForFunction(() =>
    document.body.getAttribute('data-connection') === 'connected' &&
    document.querySelector('[data-testid="me-tag"]').textContent.trim() !== '',
  null, { timeout: WAIT });
  page.label = label;
  return page;
}

async function say(page, text) {
  await page.fill('[data-testid="composer"]', text);
  await page.press('[data-testid="composer"]', 'Enter');
}

async function waitForText(page, text) {
  await page.waitForFunction((t) =>
    [...document.querySelectorAll('[data-testid="message-text"]')].some((n) => n.textContent === t),
  text, { timeout: WAIT });
}

before(async () => {
  baseUrl = await startServer();
  perSubscriptionUrl = await startServer(['--wt-streams', 'per-subscription']);
  browser = await launchChromium();
}, { timeout: 45_000 });

after(async () => {
  try { await browser?.close(); } catch { /* ignore */ }
  killServer();
  clearTimeout(watchdog);
});

test('a WebTransport user and a WebSocket user chat both ways; a normal close resolves `closed`', { timeout: 60_000 }, async () => {
  const quic = await newUser('quic', 'webtransport');
  const tcp = await newUser('tcp', 'websocket');

  const quicTransport = await quic.evaluate(() => window.rtchat.transport);
  assert.equal(quicTransport.kind, 'webtransport', `the WebTransport page uses it (${quicTransport.note})`);
  assert.equal((await tcp.evaluate(() => window.rtchat.transport)).kind, 'websocket');
  assert.equal(await quic.getAttribute('[data-testid="transport"]', 'data-kind'), 'webtransport');

  // The indicator shows a measured round trip (a receipt) once one came back.
  await quic.waitForFunction(() => /WT · \d+ ms/.test(document.querySelector('[data-testid="transport"]').textContent),
    null, { timeout: WAIT });

  await say(quic, 'over QUIC to TCP');
  await waitForText(tcp, 'over QUIC to TCP');
  await say(tcp, 'over TCP to QUIC');
  await waitForText(quic, 'over TCP to QUIC');

  // Leaving: DISCONNECT, its RECEIPT, then the page ends the session with
  // CLOSE_WEBTRANSPORT_SESSION code 0, and `closed` resolves (not "Connection lost").
  await quic.evaluate(() => window.rtchat.disconnect());
  await quic.waitForFunction(() => window.rtchat.transport.lastClose !== null, null, { timeout: WAIT });
  const closed = await quic.evaluate(() => window.rtchat.transport.lastClose);
  assert.equal(closed.clean, true, `closed resolved: ${JSON.stringify(closed)}`);
  assert.equal(closed.closeCode, 0);
  assert.equal(closed.reason, 'client closing');

  for (const page of [quic, tcp]) assert.deepEqual(page.errors, [], `${page.label}: no page errors`);
});

test('with --wt-streams per-subscription, a WebTransport user chats over the server\'s unidirectional streams', { timeout: 60_000 }, async () => {
  const quic = await newUser('quic-per-subscription', 'webtransport', perSubscriptionUrl);
  const transport = await quic.evaluate(() => window.rtchat.transport);
  assert.equal(transport.kind, 'webtransport', `the WebTransport page uses it (${transport.note})`);
  assert.equal(transport.streams, 'per-subscription');

  // The page's own message comes back as a MESSAGE: on the lobby subscription's stream.
  await say(quic, 'one stream per subscription');
  await waitForText(quic, 'one stream per subscription');
  const uniStreams = await quic.evaluate(() => window.rtchat.transport.uniStreams);
  assert.ok(uniStreams >= 1, `the server opened unidirectional streams (${uniStreams})`);
  // Receipts still come on the bidirectional stream: the round trip is measured.
  await quic.waitForFunction(() => /WT · \d+ ms/.test(document.querySelector('[data-testid="transport"]').textContent),
    null, { timeout: WAIT });
  assert.deepEqual(quic.errors, [], 'no page errors');
});

test('the server shutting down ends a WebTransport session cleanly: `closed` resolves', { timeout: 60_000 }, async () => {
  const quic = await newUser('quic-shutdown', 'webtransport');
  assert.equal((await quic.evaluate(() => window.rtchat.transport)).kind, 'webtransport');
  await say(quic, 'before the shutdown');
  await waitForText(quic, 'before the shutdown');

  const server = servers[0];
  const exited = new Promise((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })));
  server.kill('SIGTERM');
  await quic.waitForFunction(() => window.rtchat.transport.lastClose !== null, null, { timeout: WAIT });
  const closed = await quic.evaluate(() => window.rtchat.transport.lastClose);
  assert.equal(closed.clean, true, `closed resolved, not "Connection lost": ${JSON.stringify(closed)}`);
  assert.equal(closed.closeCode, 0);
  // The drain ends and the process exits 0 (SIGTERM is a normal stop).
  assert.deepEqual(await exited, { code: 0, signal: null });
  assert.deepEqual(quic.errors, [], 'no page errors');
});
