// Headless-Chromium test of the rtchat page, against a real server binary.
//
//   RTCHAT_SERVER_BIN  the server (default: <repo>/$CARGO_TARGET_DIR|target/debug/rtchat-server)
//   CHROMIUM_PATH      the browser (default /usr/bin/chromium); playwright-core only drives it
//   RTCHAT_SCREENSHOT  where to write the screenshot (default <repo>/docs/screenshot.png; "" = skip)
//
// Run: scripts/browser-test.sh  (or: node --test e2e/browser/)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createHmac, randomUUID } from 'node:crypto';
import path from 'node:path';
import { capLog, launchChromium, repoRoot, spawnServer } from './harness.mjs';

const SCREENSHOT = process.env.RTCHAT_SCREENSHOT ?? path.join(repoRoot, 'docs', 'screenshot.png');
const JWT_SECRET = 'rtchat-browser-test-secret-0123456789abcdef';
const VIEWPORT = { width: 1000, height: 700 };
const WAIT = 15_000; // bound on every single wait
const WHOLE_RUN = 110_000; // the whole file, server start to shutdown

let server = null;
let serverLog = '';
let baseUrl = '';
let browser = null;
const pages = []; // every page opened, to check for dialogs and errors at the end

// ---- process-wide guards ------------------------------------------------------
function killServer() {
  if (server && server.exitCode === null && server.signalCode === null) {
    try { server.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killServer);
const watchdog = setTimeout(async () => {
  console.error(`browser test: over ${WHOLE_RUN} ms, giving up\n--- server output ---\n${serverLog}`);
  killServer();
  try { await browser?.close(); } catch { /* ignore */ }
  process.exit(1);
}, WHOLE_RUN);
watchdog.unref();

// ---- server -------------------------------------------------------------------
async function startServer(bind = '127.0.0.1:0') {
  serverLog = '';
  // The memory store: every start is a new log (a new epoch), and nothing is written to disk.
  const started = spawnServer(['--bind', bind, '--jwt-secret', JWT_SECRET, '--store', 'memory'], {
    onOutput: (text) => { serverLog = capLog(serverLog + text); },
  });
  server = started.child;
  const [url] = await started.ready;
  return url;
}

// ---- browser helpers --------------------------------------------------------------
const sel = {
  composer: '[data-testid="composer"]',
  messages: '[data-testid="messages"]',
  message: '[data-testid="message"]',
  scroller: '[data-testid="scroller"]',
  alert: '[data-testid="new-message-alert"]',
};

/** A new person: a fresh context (own localStorage) and a page on `urlPath`. */
async function newUser(label, urlPath = '/') {
  const context = await browser.newContext({ viewport: VIEWPORT, locale: 'en-GB', timezoneId: 'UTC' });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.label = label;
  page.dialogs = [];
  page.errors = [];
  page.on('dialog', async (d) => { page.dialogs.push(d.message()); await d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') page.errors.push(`console: ${m.text()} (${m.location()?.url || '?'})`);
  });
  pages.push(page);
  await page.goto(baseUrl + urlPath, { timeout: WAIT });
  await waitReady(page);
  return page;
}

async function waitReady(page) {
  await page.waitForFunction(() =>
    document.body.getAttribute('data-connection') === 'connected' &&
    document.querySelector('[data-testid="me-tag"]').textContent.trim() !== '' &&
    document.querySelector('[data-testid="count"]').textContent.trim() !== '–',
  null, { timeout: WAIT });
}

async function me(page) {
  return page.evaluate(() => ({
    name: document.querySelector('[data-testid="me-name"]').textContent,
    tag: document.querySelector('[data-testid="me-tag"]').textContent,
  }));
}

/** Every message item: id, mine, name, tag, text. */
async function listMessages(page) {
  return page.$$eval(sel.message, (items) => items.map((li) => ({
    id: Number(li.getAttribute('data-id')),
    mine: li.getAttribute('data-mine'),
    name: li.querySelector('[data-testid="message-name"]').textContent,
    tag: li.querySelector('[data-testid="message-tag"]').textContent,
    text: li.querySelector('[data-testid="message-text"]').textContent,
  })));
}

async function waitForText(page, text, mine) {
  await page.waitForFunction(([t, m]) =>
    [...document.querySelectorAll('[data-testid="message"]')].some((li) =>
      li.querySelector('[data-testid="message-text"]').textContent === t &&
      (m === null || li.getAttribute('data-mine') === m)),
  [text, mine === undefined ? null : String(mine)], { timeout: WAIT });
  const all = await listMessages(page);
  return all.find((m) => m.text === text);
}

/** Types `text` in the composer, presses Enter, waits until it comes back as mine. */
async function say(page, text) {
  await page.fill(sel.composer, text);
  await page.press(sel.composer, 'Enter');
  assert.equal(await page.inputValue(sel.composer), '', 'the composer clears after sending');
  return waitForText(page, text, true);
}

async function assertNoDuplicates(page) {
  const ids = (await listMessages(page)).map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, `${page.label}: no message shown twice`);
  const sorted = [...ids].sort((a, b) => a - b);
  assert.deepEqual(ids, sorted, `${page.label}: messages in id order`);
}

async function countShown(page) {
  return Number((await page.textContent('[data-testid="count"]')).trim());
}

async function scrollInfo(page) {
  return page.$eval(sel.scroller, (s) => ({
    top: s.scrollTop,
    fromBottom: s.scrollHeight - s.scrollTop - s.clientHeight,
  }));
}

/** Side of the list the message bubble sits on. */
async function side(page, id) {
  return page.evaluate((mid) => {
    const s = document.querySelector('[data-testid="scroller"]').getBoundingClientRect();
    const b = document.querySelector(`[data-testid="message"][data-id="${mid}"] [data-testid="message-text"]`).getBoundingClientRect();
    const centre = (b.left + b.right) / 2;
    return centre > (s.left + s.right) / 2 ? 'right' : 'left';
  }, id);
}

async function createRoom(page, name) {
  return page.evaluate(async (n) => {
    const res = await fetch('/rooms', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + localStorage.getItem('rtchat.token') },
      body: JSON.stringify({ name: n }),
    });
    const env = await res.json();
    if (!env.success) throw new Error(`POST /rooms: ${res.status} ${JSON.stringify(env)}`);
    return env.response.roomId;
  }, name);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the run ---------------------------------------------------------------------
let alice; let bob;

before(async () => {
  baseUrl = await startServer();
  browser = await launchChromium();
}, { timeout: 45_000 });

after(async () => {
  try { await browser?.close(); } catch { /* ignore */ }
  killServer();
  clearTimeout(watchdog);
});

test('the page loads, gets a token and shows who I am', { timeout: 30_000 }, async () => {
  alice = await newUser('alice');
  bob = await newUser('bob');
  const a = await me(alice);
  const b = await me(bob);
  assert.match(a.tag, /^#[0-9A-F]{6}$/, 'my tag looks like #A1B2C3');
  assert.match(b.tag, /^#[0-9A-F]{6}$/);
  assert.ok(a.name.length > 0 && b.name.length > 0, 'a display name is shown');
  assert.notEqual(a.tag, b.tag, 'two browsers are two people');
  const stored = await alice.evaluate(() => localStorage.getItem('rtchat.token'));
  assert.ok(stored && stored.split('.').length === 3, 'the token is kept in localStorage');
});

/** An HS256 token signed with the test secret, expired an hour ago. */
function expiredToken(tag, name) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ typ: 'JWT', alg: 'HS256' });
  const body = b64({ jti: randomUUID(), iss: 'rtchat', sub: tag, randId: name, aud: '127.0.0.1',
    iat: now - 7200, nbf: now - 7200, exp: now - 3600 });
  return `${head}.${body}.${createHmac('sha256', JWT_SECRET).update(`${head}.${body}`).digest('base64url')}`;
}

/** A fresh person whose localStorage already holds `token` when the page starts. */
async function userWithStoredToken(label, token) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.label = label;
  page.dialogs = [];
  page.errors = [];
  page.on('dialog', async (d) => { page.dialogs.push(d.message()); await d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => page.errors.push(String(e)));
  await page.goto(`${baseUrl}/healthz`); // same origin, without the app running
  await page.evaluate((t) => localStorage.setItem('rtchat.token', t), token);
  await page.goto(`${baseUrl}/`);
  await waitReady(page);
  return page;
}

test('an expired stored token is replaced (same name), a bad one gets a new identity', { timeout: 30_000 }, async () => {
  const old = expiredToken('#ABCDEF', 'Oldtimer7');
  const p1 = await userWithStoredToken('expired', old);
  assert.deepEqual(await me(p1), { name: 'Oldtimer7', tag: '#ABCDEF' }, 'the re-issued token keeps name and tag');
  const stored1 = await p1.evaluate(() => localStorage.getItem('rtchat.token'));
  assert.notEqual(stored1, old, 'the new token was stored');
  assert.deepEqual(p1.errors, []);
  await p1.context().close();

  const p2 = await userWithStoredToken('invalid', 'not.a.token');
  const who = await me(p2);
  assert.match(who.tag, /^#[0-9A-F]{6}$/, 'a new identity after an invalid token');
  const stored2 = await p2.evaluate(() => localStorage.getItem('rtchat.token'));
  assert.notEqual(stored2, 'not.a.token');
  assert.equal(stored2.split('.').length, 3);
  assert.deepEqual(p2.errors, []);
  await p2.context().close();
});

test('two users chat both ways', { timeout: 30_000 }, async () => {
  const a = await me(alice);
  const b = await me(bob);

  const m1 = await say(alice, 'Hi Bob, how are you?');
  const seenByBob = await waitForText(bob, 'Hi Bob, how are you?', false);
  assert.equal(seenByBob.id, m1.id);
  assert.equal(seenByBob.name, a.name, "the other's name is shown");
  assert.equal(seenByBob.tag, a.tag, "the other's tag is shown");
  assert.equal(await side(alice, m1.id), 'right', 'my message is on the right');
  assert.equal(await side(bob, m1.id), 'left', "the other's message is on the left");

  const m2 = await say(bob, 'Great, thanks! And you?');
  const seenByAlice = await waitForText(alice, 'Great, thanks! And you?', false);
  assert.equal(seenByAlice.id, m2.id);
  assert.equal(seenByAlice.tag, b.tag);
  assert.equal(await side(bob, m2.id), 'right');
  assert.equal(await side(alice, m2.id), 'left');

  // Others' messages show the short address and a time; mine is blue.
  const details = await alice.evaluate((id) => {
    const li = document.querySelector(`[data-testid="message"][data-id="${id}"]`);
    return {
      addr: li.querySelector('[data-testid="message-addr"]').textContent,
      time: li.querySelector('[data-testid="message-time"]').textContent,
    };
  }, m2.id);
  assert.match(details.addr, /^127\.0/, 'short address (first two octets) is shown');
  assert.doesNotMatch(details.addr, /127\.0\.0\.1/, 'never the full address');
  assert.match(details.time, /\d{1,2}:\d{2}/, 'a time is shown');
  const mineColour = await alice.$eval(`[data-testid="message"][data-id="${m1.id}"] [data-testid="message-text"]`,
    (e) => getComputedStyle(e).backgroundColor);
  assert.equal(mineColour, 'rgb(37, 99, 235)', 'my messages are blue');

  await assertNoDuplicates(alice);
  await assertNoDuplicates(bob);
});

test('a reload keeps my name and tag, and my messages stay mine', { timeout: 30_000 }, async () => {
  const before_ = await me(alice);
  await alice.reload({ timeout: WAIT });
  await waitReady(alice);
  const after_ = await me(alice);
  assert.deepEqual(after_, before_, 'same name and tag after a reload');
  const mine = await waitForText(alice, 'Hi Bob, how are you?');
  assert.equal(mine.mine, 'true', 'my old message is still marked mine');
  const theirs = await waitForText(alice, 'Great, thanks! And you?');
  assert.equal(theirs.mine, 'false');
  assert.equal(await side(alice, mine.id), 'right');
});

test('the live count goes up when someone joins and down when they leave', { timeout: 30_000 }, async () => {
  const room = await createRoom(alice, 'Count test');
  await alice.goto(`${baseUrl}/?room=${encodeURIComponent(room)}`);
  await waitReady(alice);
  await alice.waitForFunction(() => document.querySelector('[data-testid="count"]').textContent.trim() === '1');

  const carol = await newUser('carol', `/?room=${encodeURIComponent(room)}`);
  await alice.waitForFunction(() => document.querySelector('[data-testid="count"]').textContent.trim() === '2');
  assert.equal(await countShown(carol), 2, 'the newcomer sees the count too');

  await carol.context().close();
  await alice.waitForFunction(() => document.querySelector('[data-testid="count"]').textContent.trim() === '1');
  assert.equal(await countShown(alice), 1);
});

test('older messages load when scrolled to the top, keeping the position', { timeout: 60_000 }, async () => {
  const room = await createRoom(bob, 'History test');
  const roomPath = `/?room=${encodeURIComponent(room)}`;
  await bob.goto(baseUrl + roomPath);
  await waitReady(bob);
  const TOTAL = 25;
  for (let i = 1; i <= TOTAL; i++) {
    await say(bob, `history message ${i} of ${TOTAL}`);
    await sleep(60); // stay under the server's per-connection send rate (20/s by default)
  }

  await alice.goto(baseUrl + roomPath);
  await waitReady(alice);
  await alice.waitForSelector(`${sel.message} >> nth=0`);
  let shown = await listMessages(alice);
  assert.ok(shown.length >= 10 && shown.length < TOTAL, `starts with a page of messages, not all (${shown.length})`);
  assert.equal(shown.at(-1).text, `history message ${TOTAL} of ${TOTAL}`, 'the newest is at the bottom');
  let info = await scrollInfo(alice);
  assert.ok(info.fromBottom < 5, 'starts scrolled to the bottom');

  for (let round = 0; round < 5 && shown.length < TOTAL; round++) {
    // Scroll to the top and note where the top message is.
    const mark = await alice.evaluate(() => {
      const s = document.querySelector('[data-testid="scroller"]');
      s.scrollTop = 0;
      const first = document.querySelector('[data-testid="message"]');
      return { id: first.getAttribute('data-id'), y: first.getBoundingClientRect().top };
    });
    const countBefore = shown.length;
    await alice.waitForFunction((n) => document.querySelectorAll('[data-testid="message"]').length > n, countBefore);
    await sleep(100); // let any (wrong) jump happen before measuring
    const y = await alice.evaluate((id) =>
      document.querySelector(`[data-testid="message"][data-id="${id}"]`).getBoundingClientRect().top, mark.id);
    assert.ok(Math.abs(y - mark.y) <= 4,
      `the previously-top message stays where it was (was at ${mark.y}px, now ${y}px)`);
    shown = await listMessages(alice);
    assert.ok(shown[0].id < Number(mark.id), 'older messages were added above');
  }
  assert.equal(shown.length, TOTAL, 'every message is reachable by scrolling up');
  assert.equal(shown[0].text, `history message 1 of ${TOTAL}`);
  for (let i = 0; i < TOTAL; i++) assert.equal(shown[i].text, `history message ${i + 1} of ${TOTAL}`);
  await alice.evaluate(() => { document.querySelector('[data-testid="scroller"]').scrollTop = 0; });
  await alice.waitForFunction(() =>
    document.querySelector('[data-testid="history-state"]').getAttribute('data-state') === 'exhausted');
  await assertNoDuplicates(alice);
});

test('scrolled up: a new message shows an alert instead of jumping; my own message scrolls down', { timeout: 30_000 }, async () => {
  // Alice is in the history room, scrolled to the top.
  await alice.evaluate(() => { document.querySelector('[data-testid="scroller"]').scrollTop = 0; });
  await sleep(200);
  assert.ok(await alice.isHidden(sel.alert), 'no alert yet');
  const bobName = (await me(bob)).name;

  const m = await say(bob, 'Are you still there, Alice?');
  await waitForText(alice, 'Are you still there, Alice?', false);
  await alice.waitForSelector(sel.alert, { state: 'visible' });
  const alertText = await alice.textContent(sel.alert);
  assert.ok(alertText.includes(bobName), `the alert names the sender (${alertText})`);
  let info = await scrollInfo(alice);
  assert.ok(info.top < 80, `the view did not jump (scrollTop ${info.top})`);

  await alice.click(sel.alert);
  await alice.waitForFunction(() => {
    const s = document.querySelector('[data-testid="scroller"]');
    return s.scrollHeight - s.scrollTop - s.clientHeight < 5;
  });
  await alice.waitForSelector(sel.alert, { state: 'hidden' });
  const lastVisible = await alice.evaluate((id) => {
    const s = document.querySelector('[data-testid="scroller"]').getBoundingClientRect();
    const r = document.querySelector(`[data-testid="message"][data-id="${id}"]`).getBoundingClientRect();
    return r.top >= s.top && r.bottom <= s.bottom + 1;
  }, m.id);
  assert.ok(lastVisible, 'the new message is in view after clicking the alert');

  // My own message always scrolls down, even when scrolled up.
  await alice.evaluate(() => { document.querySelector('[data-testid="scroller"]').scrollTop = 0; });
  await sleep(200);
  await say(alice, 'Yes, I was reading the history.');
  await alice.waitForFunction(() => {
    const s = document.querySelector('[data-testid="scroller"]');
    return s.scrollHeight - s.scrollTop - s.clientHeight < 5;
  });
  assert.ok(await alice.isHidden(sel.alert));

  // At the bottom, another's message just appears (no alert).
  await say(bob, 'Cool.');
  await waitForText(alice, 'Cool.', false);
  await alice.waitForFunction(() => {
    const s = document.querySelector('[data-testid="scroller"]');
    return s.scrollHeight - s.scrollTop - s.clientHeight < 5;
  });
  assert.ok(await alice.isHidden(sel.alert), 'no alert when already at the bottom');
});

test('message text is shown as text, never as HTML', { timeout: 30_000 }, async () => {
  const evil = '<img src=x onerror=alert(1)>';
  await say(bob, evil);
  const seen = await waitForText(alice, evil, false);
  assert.equal(seen.text, evil);
  const imgs = await alice.$$eval(`${sel.messages} img`, (l) => l.length);
  assert.equal(imgs, 0, 'no img element in the message list');
  const bobImgs = await bob.$$eval(`${sel.messages} img`, (l) => l.length);
  assert.equal(bobImgs, 0);
  await sleep(300);
  assert.deepEqual(alice.dialogs, [], 'no dialog fired');
  assert.deepEqual(bob.dialogs, [], 'no dialog fired');
});

test('reconnects by itself and catches up without gaps or duplicates', { timeout: 45_000 }, async () => {
  // A dropped socket: the page reconnects on its own.
  await alice.evaluate(() => window.rtchat.client.forceDisconnect());
  await alice.waitForFunction(() => document.body.getAttribute('data-connection') !== 'connected', null, { timeout: 5_000 })
    .catch(() => { /* may already be back */ });
  await waitReady(alice);

  // Messages sent while Alice is away arrive once she is back (since-id replay).
  await alice.evaluate(() => window.rtchat.client.deactivate());
  await alice.waitForFunction(() => !window.rtchat.client.active && !window.rtchat.client.connected);
  await say(bob, 'sent while you were away (1)');
  await say(bob, 'sent while you were away (2)');
  await alice.evaluate(() => window.rtchat.client.activate());
  await waitReady(alice);
  await waitForText(alice, 'sent while you were away (1)', false);
  await waitForText(alice, 'sent while you were away (2)', false);
  await say(bob, 'and live again');
  await waitForText(alice, 'and live again', false);
  await assertNoDuplicates(alice);
  const texts = (await listMessages(alice)).map((m) => m.text);
  assert.equal(texts.filter((t) => t === 'sent while you were away (1)').length, 1);
});

test('a message written offline, or cut off before its receipt, arrives exactly once', { timeout: 45_000 }, async () => {
  // Offline: the message is kept, and goes out once the connection is back.
  await alice.evaluate(() => window.rtchat.client.deactivate());
  await alice.waitForFunction(() => !window.rtchat.client.active && !window.rtchat.client.connected);
  await alice.fill(sel.composer, 'written while offline');
  await alice.press(sel.composer, 'Enter');
  assert.equal(await alice.inputValue(sel.composer), '', 'the composer clears: the message is kept');
  assert.equal(await alice.evaluate(() => window.rtchat.unacked), 1);
  await alice.evaluate(() => window.rtchat.client.activate());
  await waitReady(alice);
  await waitForText(bob, 'written while offline', false);
  await waitForText(alice, 'written while offline', true);
  await alice.waitForFunction(() => window.rtchat.unacked === 0);

  // Cut off right after sending: the SEND may or may not have reached the server. The page
  // sends it again after reconnecting with the same message-key, and it is stored once.
  await alice.fill(sel.composer, 'cut off before the receipt');
  await alice.evaluate(() => {
    document.querySelector('[data-testid="send"]').click();
    window.rtchat.client.forceDisconnect();
  });
  await waitReady(alice);
  await waitForText(bob, 'cut off before the receipt', false);
  await alice.waitForFunction(() => window.rtchat.unacked === 0, null, { timeout: WAIT });
  await say(bob, 'after the resend');
  await waitForText(alice, 'after the resend', false);
  for (const page of [alice, bob]) {
    await assertNoDuplicates(page);
    const texts = (await listMessages(page)).map((m) => m.text);
    assert.equal(texts.filter((t) => t === 'cut off before the receipt').length, 1, 'stored once');
    assert.equal(texts.filter((t) => t === 'written while offline').length, 1);
  }
});

test('after a server restart with a new log, new messages show on both pages without a reload', { timeout: 60_000 }, async () => {
  // The lobby exists on every start (a memory store forgets the other rooms).
  for (const page of [alice, bob]) {
    await page.goto(baseUrl + '/');
    await waitReady(page);
  }
  await say(alice, 'before the restart');
  await waitForText(bob, 'before the restart', false);
  const epochBefore = await alice.evaluate(() => window.rtchat.epoch);
  assert.ok(epochBefore, 'CONNECTED told the page its log epoch');

  // The same address and secret, a new (empty, in-memory) log: ids start at 1 again.
  const port = new URL(baseUrl).port;
  const old = server;
  const exited = new Promise((resolve) => old.once('exit', resolve));
  killServer();
  await exited;
  baseUrl = await startServer(`127.0.0.1:${port}`);

  for (const page of [alice, bob]) {
    await page.waitForFunction((before) => window.rtchat.epoch && window.rtchat.epoch !== before,
      epochBefore, { timeout: WAIT });
    await waitReady(page);
  }
  // Their first ids collide with ids the pages showed before: they must show all the same.
  await say(bob, 'first after the restart');
  await waitForText(alice, 'first after the restart', false);
  await say(alice, 'second after the restart');
  await waitForText(bob, 'second after the restart', false);
  for (const page of [alice, bob]) {
    const texts = (await listMessages(page)).map((m) => m.text);
    assert.deepEqual(texts, ['first after the restart', 'second after the restart'],
      'the old log is gone from the view; the new one shows');
    await assertNoDuplicates(page);
  }
});

test('screenshot of a conversation', { timeout: 45_000 }, async () => {
  const room = await createRoom(alice, 'Weekend hike');
  const roomPath = `/?room=${encodeURIComponent(room)}`;
  await alice.goto(baseUrl + roomPath);
  await waitReady(alice);
  await bob.goto(baseUrl + roomPath);
  await waitReady(bob);
  const dana = await newUser('dana', roomPath);

  const script = [
    [bob, 'Anyone up for a hike on Saturday?'],
    [alice, 'Yes! Which trail were you thinking of?'],
    [bob, 'The ridge loop: about 12 km, great views from the top.'],
    [dana, 'Count me in. What time do we meet?'],
    [alice, '8:00 at the trailhead car park? I can bring coffee for everyone.'],
    [dana, 'Perfect. I will bring sandwiches.'],
    [bob, 'Deal. Forecast says sunny, 18 degrees. See you there!'],
    [alice, 'See you Saturday'],
  ];
  for (const [who, text] of script) {
    await say(who, text);
    await waitForText(alice, text);
  }
  await alice.waitForFunction(() => document.querySelector('[data-testid="count"]').textContent.trim() === '3');
  await alice.evaluate(() => {
    document.querySelector('[data-testid="composer"]').blur();
    const s = document.querySelector('[data-testid="scroller"]');
    s.scrollTop = s.scrollHeight;
  });
  await sleep(300);
  if (SCREENSHOT) {
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await alice.screenshot({ path: SCREENSHOT });
  }
  await dana.context().close();
});

test('no page error and no dialog on any page', { timeout: 10_000 }, async () => {
  for (const p of pages) {
    assert.deepEqual(p.dialogs, [], `${p.label}: no dialog`);
    // A dropped connection may log a WebSocket error in the console: only script errors count.
    const scriptErrors = p.errors.filter((e) => !e.startsWith('console: WebSocket'));
    assert.deepEqual(scriptErrors, [], `${p.label}: no script error`);
  }
});
