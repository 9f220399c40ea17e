// The Spring frontend's situation, in headless Chromium: a page from ANOTHER origin (a tiny
// static server here) using jQuery 3, sockjs-client 1.5.2 and stompjs 2.3.3 exactly as the
// Spring Boot chat's own frontend does (e2e/browser/spring/), against a real rtchat server
// started with --cors-origin and --room. Two users chat in the fixed-id room, see the count,
// page back through history and keep their identity after a reload; all of it once per
// transport: SockJS's default transports (websocket), ['xhr-streaming'], ['xhr-polling'], and
// ['eventsource'].
//
//   RTCHAT_SERVER_BIN  the server (default: <repo>/$CARGO_TARGET_DIR|target/debug/rtchat-server)
//   CHROMIUM_PATH      the browser (default /usr/bin/chromium)
//
// Run: scripts/browser-test.sh  (or: node --test e2e/browser/spring.test.mjs)
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { capLog, launchChromium, spawnServer } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const JWT_SECRET = 'rtchat-spring-test-secret-0123456789abcdef';
const ROOM = '723a2a33-577b-4380-8116-a1aa8e5868d3';
const WAIT = 15_000; // bound on every single wait
const WHOLE_RUN = 300_000; // the whole file: four runs

// Each run: SockJS transports given to the page (none: sockjs-client's default order) and
// the transport it must end up on.
const RUNS = [
  { transports: null, expect: 'websocket' },
  { transports: 'xhr-streaming', expect: 'xhr-streaming' },
  { transports: 'xhr-polling', expect: 'xhr-polling' },
  { transports: 'eventsource', expect: 'eventsource' },
];

let browser = null;
let server = null;
let serverLog = '';
let staticServer = null;
let pageOrigin = '';
const pages = [];

function killServer() {
  if (server && server.exitCode === null && server.signalCode === null) {
    try { server.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killServer);
const watchdog = setTimeout(async () => {
  console.error(`spring browser test: over ${WHOLE_RUN} ms, giving up\n--- server output ---\n${serverLog}`);
  killServer();
  try { await browser?.close(); } catch { /* ignore */ }
  process.exit(1);
}, WHOLE_RUN);
watchdog.unref();

// ---- the second origin: the frontend's files, nothing else ---------------------------
const FILES = {
  '/': ['spring/index.html', 'text/html; charset=utf-8'],
  '/index.html': ['spring/index.html', 'text/html; charset=utf-8'],
  '/app.js': ['spring/app.js', 'text/javascript; charset=utf-8'],
  '/vendor/jquery.min.js': ['node_modules/jquery/dist/jquery.min.js', 'text/javascript; charset=utf-8'],
  '/vendor/sockjs.min.js': ['node_modules/sockjs-client/dist/sockjs.min.js', 'text/javascript; charset=utf-8'],
  '/vendor/stomp.min.js': ['node_modules/stompjs/lib/stomp.min.js', 'text/javascript; charset=utf-8'],
};

function startStatic() {
  const staticRequests = [];
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    staticRequests.push(`${req.method} ${url.pathname}`);
    const file = FILES[url.pathname];
    if (req.method !== 'GET' || !file) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store' });
    res.end(readFileSync(path.join(here, file[0])));
  });
  srv.staticRequests = staticRequests;
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

// ---- rtchat, as a Spring replacement ----------------------------------------------------
async function startServer() {
  serverLog = '';
  // Server heart-beats 1000,1000 against the page's 10000,10000: both directions beat every
  // 10 s, so each run sees them flow over its transport. Short SockJS streams (4 KiB) and
  // heartbeats (2 s), so the runs cross many stream ends and `h` frames.
  const started = spawnServer(['--bind', '127.0.0.1:0', '--jwt-secret', JWT_SECRET, '--store', 'memory',
    '--cors-origin', pageOrigin, '--room', `${ROOM}=lobby2`, '--heart-beat', '1000,1000',
    '--sockjs-stream-bytes', '4096', '--sockjs-heartbeat', '2s'], {
    onOutput: (text) => { serverLog = capLog(serverLog + text); },
  });
  server = started.child;
  const [url] = await started.ready;
  return url;
}

async function stopServer() {
  const old = server;
  if (!old || old.exitCode !== null || old.signalCode !== null) return;
  const exited = new Promise((resolve) => old.once('exit', resolve));
  killServer();
  await exited;
}

// ---- the page ------------------------------------------------------------------------
async function openUser(label, url) {
  const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.label = label;
  page.errors = [];
  page.dialogs = [];
  page.on('dialog', async (d) => { page.dialogs.push(d.message()); await d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') page.errors.push(`console: ${m.text()} (${m.location()?.url || '?'})`);
  });
  pages.push(page);
  await page.goto(url, { timeout: WAIT });
  await waitConnected(page);
  return page;
}

async function waitConnected(page) {
  await page.waitForFunction(() => document.body.getAttribute('data-connection') === 'connected' &&
    window.spring && window.spring.transport, null, { timeout: WAIT });
}

const spring = (page) => page.evaluate(() => {
  const s = window.spring;
  return {
    me: s.me, transport: s.transport, live: s.live, duplicates: s.duplicates, errors: s.errors,
    lost: s.lost, serverBeats: s.serverBeats, clientBeats: s.clientBeats, exhausted: s.exhausted,
  };
});

/** The message items in the order shown: id, mine (attribute and style), name, tag, text. */
const shown = (page) => page.$$eval('#messages li', (items) => items.map((li) => ({
  id: Number(li.getAttribute('data-id')),
  mine: li.getAttribute('data-mine') === 'true',
  styledMine: li.classList.contains('mine') &&
    getComputedStyle(li.querySelector('.text')).backgroundColor === 'rgb(37, 99, 235)',
  name: li.querySelector('.name').textContent,
  tag: li.querySelector('.tag').textContent,
  text: li.querySelector('.text').textContent,
})));

const count = (page) => page.textContent('#count');
const waitCount = (page, n) => page.waitForFunction((c) => document.querySelector('#count').textContent === c,
  String(n), { timeout: WAIT });

async function waitText(page, text) {
  await page.waitForFunction((t) => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === t),
    text, { timeout: WAIT });
}

/** Types and sends as a person would. */
async function say(page, text) {
  await page.fill('#composer', text);
  await page.press('#composer', 'Enter');
  assert.equal(await page.inputValue('#composer'), '');
  await waitText(page, text);
}

/** The whole room as the server stores it, oldest first (through the HTTP API, as Node). */
async function serverHistory(base, token) {
  const all = [];
  let url = `${base}/message?roomId=${ROOM}&limit=100`;
  for (;;) {
    const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
    const env = await res.json();
    assert.equal(env.success, true, `history: ${JSON.stringify(env)}`);
    all.push(...env.response);
    if (env.response.length < 100) break;
    url = `${base}/message/lastMessageId?roomId=${ROOM}&limit=100&lastMessageId=${env.response.at(-1).id}`;
  }
  return all.reverse();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the runs ---------------------------------------------------------------------------
before(async () => {
  staticServer = await startStatic();
  pageOrigin = `http://127.0.0.1:${staticServer.address().port}`;
  browser = await launchChromium();
}, { timeout: 45_000 });

after(async () => {
  try { await browser?.close(); } catch { /* ignore */ }
  killServer();
  staticServer?.close();
  clearTimeout(watchdog);
});

for (const run of RUNS) {
  describe(`Spring frontend over SockJS ${run.transports ? `[${run.transports}]` : '(default transports)'}`, () => {
    let base = '';
    let pageUrl = '';
    let alice; let bob;
    const contexts = [];

    before(async () => {
      base = await startServer();
      assert.notEqual(new URL(base).origin, pageOrigin, 'the page and the server are two origins');
      // As the Spring frontend does: the page on 127.0.0.1, its backend named `localhost`.
      const pageServer = base.replace('http://127.0.0.1:', 'http://localhost:');
      pageUrl = `${pageOrigin}/index.html?server=${encodeURIComponent(pageServer)}` +
        (run.transports ? `&transports=${encodeURIComponent(run.transports)}` : '');
    }, { timeout: 30_000 });

    after(async () => {
      for (const c of contexts) await c.close().catch(() => {});
      await stopServer();
    });

    test('two users get tokens across origins, connect through /connect and see the count', { timeout: 45_000 }, async () => {
      alice = await openUser('alice', pageUrl);
      contexts.push(alice.context());
      const a = await spring(alice);
      assert.equal(a.transport, run.expect, 'SockJS chose the expected transport');
      assert.match(a.me.tag, /^#[0-9A-F]{6}$/, 'sub is the name tag');
      assert.ok(a.me.name.length > 1, 'randId is the display name');
      assert.equal(a.me.host, '127.0.0.1', 'aud is an array; aud[0] is the address, not its first character');
      assert.ok((await alice.evaluate(() => localStorage.getItem('token'))).split('.').length === 3,
        'the token from /init is kept in localStorage');
      await waitCount(alice, 1);

      bob = await openUser('bob', pageUrl);
      contexts.push(bob.context());
      const b = await spring(bob);
      assert.equal(b.transport, run.expect);
      assert.notEqual(b.me.tag, a.me.tag, 'two browsers are two people');
      await waitCount(alice, 2);
      await waitCount(bob, 2);
    });

    test('they chat both ways: nothing lost, duplicated or reordered, own messages styled as own', { timeout: 60_000 }, async () => {
      const a = await spring(alice);
      const b = await spring(bob);
      await say(alice, 'Hi Bob!');
      await waitText(bob, 'Hi Bob!');
      await say(bob, 'Hi Alice, over SockJS.');
      await waitText(alice, 'Hi Alice, over SockJS.');

      // Both at once, interleaved on the server: each page SENDs (through stompjs) a numbered
      // series, under the server's 20 SENDs per second.
      const N = 12;
      const burst = (page, who) => page.evaluate(async ([w, n]) => {
        for (let i = 1; i <= n; i++) {
          window.spring.send(`${w} ${i}/${n}`);
          await new Promise((r) => setTimeout(r, 70));
        }
      }, [who, N]);
      await Promise.all([burst(alice, 'alice'), burst(bob, 'bob')]);
      const total = 2 + 2 * N;
      for (const page of [alice, bob]) {
        await page.waitForFunction((n) => window.spring.live.length >= n, total, { timeout: WAIT });
      }
      await sleep(300); // anything extra (a duplicate) would show by now

      const token = await alice.evaluate(() => localStorage.getItem('token'));
      const stored = await serverHistory(base, token);
      assert.equal(stored.length, total, 'every message was stored once');
      const storedIds = stored.map((m) => m.id);
      for (const page of [alice, bob]) {
        const s = await spring(page);
        assert.deepEqual(s.live, storedIds, `${page.label}: got every message live, once, in the stored order`);
        assert.deepEqual(s.duplicates, [], `${page.label}: no message delivered twice`);
        assert.deepEqual(s.errors, [], `${page.label}: nothing on /user/queue/errors`);
        assert.deepEqual(s.lost, [], `${page.label}: the connection never failed`);
        const list = await shown(page);
        assert.deepEqual(list.map((m) => m.id), storedIds, `${page.label}: shown in order`);
        for (const who of ['alice', 'bob']) {
          const texts = list.filter((m) => m.text.startsWith(`${who} `)).map((m) => m.text);
          assert.deepEqual(texts, Array.from({ length: N }, (_, i) => `${who} ${i + 1}/${N}`),
            `${page.label}: ${who}'s messages in the order sent`);
        }
        const mineTag = s.me.tag;
        for (const m of list) {
          const mine = m.tag === mineTag;
          assert.equal(m.mine, mine, `${page.label}: message ${m.id} marked ${mine ? 'mine' : 'theirs'}`);
          assert.equal(m.styledMine, mine, `${page.label}: message ${m.id} styled ${mine ? 'as mine' : 'as theirs'}`);
        }
      }
      if (run.expect === 'xhr-streaming') {
        const streams = await alice.evaluate(() => performance.getEntriesByType('resource')
          .filter((e) => new URL(e.name).pathname.endsWith('/xhr_streaming')).length);
        assert.ok(streams >= 2, `the stream ended and was reopened while messages flowed (${streams} streams)`);
      }
      const first = stored[0];
      assert.equal(first.message, 'Hi Bob!');
      assert.equal(first.nameTag, a.me.tag, 'the name tag comes from the token');
      assert.equal(first.randId, a.me.name);
      assert.equal(stored[1].nameTag, b.me.tag);
    });

    test('STOMP heart-beats at 10000,10000 flow both ways over the transport', { timeout: 30_000 }, async () => {
      for (const page of [alice, bob]) {
        await page.waitForFunction(() => window.spring.serverBeats > 0 && window.spring.clientBeats > 0,
          null, { timeout: 20_000 });
        const s = await spring(page);
        assert.deepEqual(s.lost, [], `${page.label}: still connected after heart-beats`);
      }
      await say(bob, 'still here after the heart-beats');
      await waitText(alice, 'still here after the heart-beats');
    });

    test('a newcomer pages back through the whole history with /message/lastMessageId', { timeout: 45_000 }, async () => {
      const carol = await openUser('carol', pageUrl);
      contexts.push(carol.context());
      await waitCount(alice, 3);
      const token = await carol.evaluate(() => localStorage.getItem('token'));
      const stored = await serverHistory(base, token);
      let list = await shown(carol);
      assert.deepEqual(list.map((m) => m.id), stored.slice(-10).map((m) => m.id),
        'the newest 10 first, from GET /message');
      for (let round = 0; round < 10 && !(await spring(carol)).exhausted; round++) {
        const before_ = list.length;
        await carol.evaluate(() => { document.querySelector('#scroller').scrollTop = 0; });
        await carol.waitForFunction((n) => document.querySelectorAll('#messages li').length > n ||
          window.spring.exhausted, before_, { timeout: WAIT });
        await carol.waitForFunction(() => !window.spring.loadingOlder, null, { timeout: WAIT });
        list = await shown(carol);
      }
      assert.deepEqual(list.map((m) => m.id), stored.map((m) => m.id),
        'every stored message, once and in order, after scrolling back');
      assert.ok(list.every((m) => !m.mine), 'none of them is the newcomer\'s');
      assert.deepEqual((await spring(carol)).duplicates, []);

      await carol.context().close();
      await waitCount(alice, 2); // carol's session ended (at once, or after the SockJS disconnect delay)
    });

    test('a reload keeps the identity; old messages stay mine; the chat goes on', { timeout: 45_000 }, async () => {
      const before_ = await spring(alice);
      await alice.reload({ timeout: WAIT });
      await waitConnected(alice);
      const after_ = await spring(alice);
      assert.deepEqual(after_.me, before_.me, 'same name, tag and aud after a reload');
      assert.equal(after_.transport, run.expect);
      const list = await shown(alice);
      assert.equal(list.length, 10, 'the newest page of history again');
      assert.ok(list.some((m) => m.mine && m.styledMine && m.text.startsWith('alice ')),
        'her messages from before the reload are still hers');
      assert.ok(list.filter((m) => m.tag !== after_.me.tag).every((m) => !m.mine));
      await waitCount(alice, 2);

      await say(alice, 'back after a reload');
      await waitText(bob, 'back after a reload');
      await say(bob, 'welcome back');
      await waitText(alice, 'welcome back');

      const token = await bob.evaluate(() => localStorage.getItem('token'));
      const stored = await serverHistory(base, token);
      const b = await spring(bob);
      assert.deepEqual(b.live, stored.map((m) => m.id), 'bob missed nothing and got nothing twice throughout');
      assert.deepEqual(b.duplicates, []);
      assert.deepEqual(after_.lost, []);
      const a = await spring(alice);
      assert.deepEqual(a.live, stored.slice(-2).map((m) => m.id), 'alice, after her reload, got what came since');
      assert.deepEqual(a.errors, []);
      assert.deepEqual(b.errors, []);
    });
  });
}

test('the static origin served only the page; no page error, no dialog', () => {
  const unexpected = staticServer.staticRequests.filter((r) => !/^GET \/(index\.html|app\.js|vendor\/[a-z.]+|favicon\.ico)?$/.test(r));
  assert.deepEqual(unexpected, [], 'every API call went to the rtchat origin');
  for (const p of pages) {
    assert.deepEqual(p.dialogs, [], `${p.label}: no dialog`);
    assert.deepEqual(p.errors, [], `${p.label}: no script or console error`);
  }
});
