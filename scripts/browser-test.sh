#!/usr/bin/env bash
# Runs the headless-Chromium tests against a built server binary: the chat page (chat.test.mjs)
# and the Spring frontend over SockJS from a second origin, three transports (spring.test.mjs).
# Builds nothing: run `cargo build -p rtchat-server` (and scripts/install-browser-test-deps.sh) first.
#   RTCHAT_SERVER_BIN  server binary (default: $CARGO_TARGET_DIR/debug/rtchat-server, else target/debug/rtchat-server)
#   CHROMIUM_PATH      browser (default /usr/bin/chromium)
#   RTCHAT_SCREENSHOT  where to save the screenshot (default: the target dir's
#                      browser-screenshot.png; docs/screenshot.png to refresh the README's; empty to skip)
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
export RTCHAT_SERVER_BIN="${RTCHAT_SERVER_BIN:-$target_dir/debug/rtchat-server}"
case "$RTCHAT_SERVER_BIN" in
  /*) ;;
  *) RTCHAT_SERVER_BIN="$PWD/$RTCHAT_SERVER_BIN" ;;
esac
if [ ! -x "$RTCHAT_SERVER_BIN" ]; then
  echo "browser-test: no server binary at $RTCHAT_SERVER_BIN (build it: cargo build -p rtchat-server)" >&2
  exit 1
fi
if [ ! -d e2e/browser/node_modules/playwright-core ]; then
  echo "browser-test: playwright-core missing (run scripts/install-browser-test-deps.sh)" >&2
  exit 1
fi
case "$target_dir" in
  /*) ;;
  *) target_dir="$PWD/$target_dir" ;;
esac
export RTCHAT_SCREENSHOT="${RTCHAT_SCREENSHOT-$target_dir/browser-screenshot.png}"
exec node --test --test-reporter=spec e2e/browser/*.test.mjs
