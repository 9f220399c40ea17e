// What the browser tests share: the server binary started and awaited, and headless Chromium.
//
//   RTCHAT_SERVER_BIN  the server (default: <repo>/$CARGO_TARGET_DIR|target/debug/rtchat-server)
//   CHROMIUM_PATH      the browser (default /usr/bin/chromium); playwright-core only drives it
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const targetDir = path.resolve(repoRoot, process.env.CARGO_TARGET_DIR || 'target');
export const SERVER_BIN = process.env.RTCHAT_SERVER_BIN || path.join(targetDir, 'debug', 'rtchat-server');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** The line the server prints once it listens; group 1 is the page's URL. */
export const LISTENING = /(http:\/\/127\.0\.0\.1:\d+)\//;

/** Keeps a server log bounded: the last 100,000 characters once it passes 200,000. */
export function capLog(log) {
  return log.length > 200_000 ? log.slice(-100_000) : log;
}

/**
 * Starts the server binary with `args`. Gives the child at once (so a watchdog can kill it)
 * and `ready`, which resolves with what each of `patterns` matched in the output (its group 1,
 * else the whole match) once all have, and rejects if the server exits first or 20 s pass.
 * `onOutput` hears every chunk of stdout and stderr.
 */
export function spawnServer(args, { patterns = [LISTENING], onOutput = () => {} } = {}) {
  if (!existsSync(SERVER_BIN)) {
    const missing = new Error(`no server binary at ${SERVER_BIN} (cargo build -p rtchat-server, or set RTCHAT_SERVER_BIN)`);
    return { child: null, ready: Promise.reject(missing) };
  }
  const child = spawn(SERVER_BIN, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  let log = '';
  const ready = new Promise((resolve, reject) => {
    let settled = false;
    const settle = (done) => { if (!settled) { settled = true; clearTimeout(timer); done(); } };
    const timer = setTimeout(() => settle(() => reject(new Error(`server did not start in 20 s:\n${log}`))), 20_000);
    const onData = (chunk) => {
      const text = chunk.toString();
      log = capLog(log + text);
      onOutput(text);
      const found = patterns.map((pattern) => pattern.exec(log));
      if (found.every(Boolean)) settle(() => resolve(found.map((m) => m[1] ?? m[0])));
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => settle(() => reject(e)));
    child.on('exit', (code, signal) =>
      settle(() => reject(new Error(`server exited early (code ${code}, signal ${signal}):\n${log}`))));
  });
  return { child, ready };
}

/** Headless Chromium as every browser test runs it. */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
}
