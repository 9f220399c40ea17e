#!/usr/bin/env bash
# WebSocket next to WebTransport on one server (docs/benchmarks.md, "WebTransport next to
# WebSocket"): fan-out (3 rounds), latency at 200 msg/s (2 rounds), idle memory and connect time
# at 2,000 sessions (1 round); a fresh server per figure, the transports alternating. Bounded:
# each run stops by itself or after 5 minutes. Loopback only.
# Build first: cargo build --release -p rtchat-server -p rtchat-loadgen
#   RELEASE_DIR  where the binaries are (default: $CARGO_TARGET_DIR/release, else target/release)
set -u
cd "$(dirname "$0")/.."
R="${RELEASE_DIR:-${CARGO_TARGET_DIR:-target}/release}"
PORT=18100
WT_PORT=18433
SECRET=s3cret-bench-0123456789abcdef0123
run() {
  local transport=$1 measure=$2
  shift 2
  $R/rtchat-server --bind 127.0.0.1:$PORT --webtransport 127.0.0.1:$WT_PORT --store memory \
    --jwt-secret $SECRET --max-sends-per-second 0 --max-frames-per-second 0 \
    --rooms-per-hour 0 --tokens-per-hour 0 --max-pending-per-address 0 > /dev/null 2>&1 &
  local server=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/healthz > /dev/null && break; sleep 0.1; done
  echo "$transport $measure (load $(cut -d' ' -f1 /proc/loadavg))"
  timeout 300 $R/rtchat-loadgen "$measure" --transport "$transport" --url ws://127.0.0.1:$PORT/ws \
    --jwt-secret $SECRET --server-pid $server "$@" 2>&1
  kill $server
  wait $server 2> /dev/null
}
for round in 1 2 3; do
  for transport in ws wt; do run $transport fanout --subscribers 100 --messages 2000; done
done
for round in 1 2; do
  for transport in wt ws; do run $transport latency --subscribers 100 --rate 200 --seconds 10; done
done
for transport in ws wt; do run $transport idle --connections 2000; done
