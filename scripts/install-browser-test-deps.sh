#!/usr/bin/env bash
# Installs what the headless-browser test needs, idempotently:
#   - Chromium from Debian (only when /usr/bin/chromium is missing; needs root or sudo),
#   - playwright-core (driver only, no browser download) and @stomp/stompjs into e2e/browser,
#   - the Spring frontend's libraries for spring.test.mjs: sockjs-client 1.5.2, stompjs 2.3.3
#     and jQuery 3 (stompjs's optional `websocket` dependency is for Node only: omitted).
# Never `npx playwright install`: the test uses the system Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-browser-test-deps: installing chromium (apt)"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
else
  echo "install-browser-test-deps: /usr/bin/chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
fi

# playwright-core must not try to download browsers.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ -f e2e/browser/package-lock.json ]; then
  npm ci --prefix e2e/browser --no-audit --no-fund --omit=optional
else
  npm install --prefix e2e/browser --no-audit --no-fund --omit=optional
fi
echo "install-browser-test-deps: done"
