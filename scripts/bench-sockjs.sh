#!/usr/bin/env bash
# Idle memory per connection and fan-out deliveries/s over /ws, SockJS websocket and SockJS
# xhr-streaming, 3 rounds, a fresh server per figure (docs/benchmarks.md, "SockJS").
# Build first: cargo build --release -p rtchat-server -p rtchat-loadgen
#   RELEASE_DIR  where the binaries are (default: $CARGO_TARGET_DIR/release, else target/release)
set -u
cd "$(dirname "$0")/.."
R="${RELEASE_DIR:-${CARGO_TARGET_DIR:-target}/release}"
PORT=18300
SECRET=s3cret-bench-0123456789abcdef0123
start() {
  $R/rtchat-server --bind 127.0.0.1:$PORT --store memory --jwt-secret $SECRET \
    --max-sends-per-second 0 --max-frames-per-second 0 --rooms-per-hour 0 --tokens-per-hour 0 \
    --max-pending-per-address 0 --max-pending-connections 8192 > /tmp/spring-bench-server.log 2>&1 &
  SP=$!
  for i in $(seq 50); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
}
stop() { kill "$SP"; wait "$SP" 2>/dev/null; }
url() { if [ "$1" = ws ]; then echo ws://127.0.0.1:$PORT/ws; else echo http://127.0.0.1:$PORT/connect; fi; }
for round in 1 2 3; do
  for tr in ws sockjs-websocket sockjs-xhr-streaming; do
    start; echo "round $round $tr idle (load $(cut -d' ' -f1 /proc/loadavg))"
    timeout 300 $R/rtchat-loadgen idle --url $(url $tr) --transport $tr --jwt-secret $SECRET --server-pid $SP --connections 2000 2>&1 | tail -2
    stop
  done
  for tr in ws sockjs-websocket sockjs-xhr-streaming; do
    start; echo "round $round $tr fanout (load $(cut -d' ' -f1 /proc/loadavg))"
    timeout 300 $R/rtchat-loadgen fanout --url $(url $tr) --transport $tr --jwt-secret $SECRET --server-pid $SP --subscribers 100 --messages 2000 2>&1 | tail -2
    stop
  done
done
