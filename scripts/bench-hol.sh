#!/usr/bin/env bash
# Head-of-line blocking (docs/benchmarks.md, "Head-of-line blocking"): one WebTransport
# subscriber of a busy room A and a quiet room B, through `rtchat-loadgen hol`'s in-process
# UDP proxy (packet loss and a fixed delay each way; these kernels have no netem), with the
# server in `--wt-streams single` and `per-subscription` mode, plus WebSocket without loss as
# the reference (a UDP proxy cannot make TCP lose packets). A fresh server per run, the modes
# alternating. Bounded: each run stops by itself or after 3 minutes. Loopback only.
# Build first: cargo build --release -p rtchat-server -p rtchat-loadgen
#   RELEASE_DIR  where the binaries are (default: $CARGO_TARGET_DIR/release, else target/release)
#   ROUNDS       runs per combination (default 3)
#   SECONDS_PER_RUN  counted seconds per run (default 20)
set -u
cd "$(dirname "$0")/.."
R="${RELEASE_DIR:-${CARGO_TARGET_DIR:-target}/release}"
ROUNDS="${ROUNDS:-3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-20}"
PORT=18110
WT_PORT=18443
SECRET=s3cret-bench-0123456789abcdef0123
run() {
  local streams=$1 transport=$2
  shift 2
  $R/rtchat-server --bind 127.0.0.1:$PORT --webtransport 127.0.0.1:$WT_PORT --store memory \
    --wt-streams "$streams" --jwt-secret $SECRET --max-sends-per-second 0 --max-frames-per-second 0 \
    --rooms-per-hour 0 --tokens-per-hour 0 --max-pending-per-address 0 > /dev/null 2>&1 &
  local server=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:$PORT/healthz > /dev/null && break; sleep 0.1; done
  echo "== $transport, server --wt-streams $streams, $* (load $(cut -d' ' -f1 /proc/loadavg))"
  timeout 180 $R/rtchat-loadgen hol --transport "$transport" --url ws://127.0.0.1:$PORT/ws \
    --jwt-secret $SECRET --seconds "$SECONDS_PER_RUN" "$@" 2>&1
  kill $server
  wait $server 2> /dev/null
}
for round in $(seq "$ROUNDS"); do
  run single ws
  for loss in 1 3; do
    for streams in single per-subscription; do
      run $streams wt --loss-percent $loss --delay-ms 20 --seed "$round"
    done
  done
done
