#!/usr/bin/env bash
# Latency against load at 100 subscribers (docs/benchmarks.md, "The 500k deliveries/s row"):
# `rtchat-loadgen latency` at 500 to 5,000 msg/s (50k to 500k deliveries/s), a fresh server per
# run, ROUNDS rounds (default 2). Prints p50/p99 and the CPU per delivery of the server and of
# the load generator, which share the machine's cores. Bounded: each run stops by itself or
# after 2 minutes. Loopback only.
# Build first: cargo build --release -p rtchat-server -p rtchat-loadgen
#   RELEASE_DIR  where the binaries are (default: $CARGO_TARGET_DIR/release, else target/release)
#   RATES        messages per second to run (default "500 1000 2000 3000 4000 5000")
set -u
cd "$(dirname "$0")/.."
R="${RELEASE_DIR:-${CARGO_TARGET_DIR:-target}/release}"
PORT=18100
SECRET=s3cret-bench-0123456789abcdef0123
for round in $(seq "${ROUNDS:-2}"); do
  for rate in ${RATES:-500 1000 2000 3000 4000 5000}; do
    $R/rtchat-server --bind 127.0.0.1:$PORT --store memory --jwt-secret $SECRET \
      --max-sends-per-second 0 --max-frames-per-second 0 --rooms-per-hour 0 --tokens-per-hour 0 \
      --max-pending-per-address 0 > /dev/null 2>&1 &
    server=$!
    for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/healthz > /dev/null && break; sleep 0.1; done
    echo "round $round, $rate msg/s x 100 subscribers (load $(cut -d' ' -f1 /proc/loadavg))"
    timeout 120 $R/rtchat-loadgen latency --url ws://127.0.0.1:$PORT/ws --jwt-secret $SECRET \
      --server-pid $server --subscribers 100 --rate "$rate" --seconds 5 2>&1
    kill $server
    wait $server 2> /dev/null
  done
done
