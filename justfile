# rtchat tasks. `cargo install just` to use them; CI runs .ci/run, which needs no just.

# List the recipes.
default:
    @just --list

# Run the server on the embedded default (SQLite in ./rtchat-data, in-process broker).
run *ARGS:
    cargo run --release -p rtchat-server -- {{ARGS}}

# Every test in the workspace, the conformance suite included.
test:
    cargo test --workspace

# The STOMP transcripts against every adapter combination (insta snapshots).
conformance:
    cargo test -p rtchat-conformance

# Review changed conformance snapshots (needs `cargo install cargo-insta`).
conformance-review:
    cargo insta review --workspace

# Criterion benchmarks: the STOMP engine, and the stores' append by batch size.
bench:
    cargo bench -p rtchat-stomp -p rtchat-sqlite -p rtchat-postgres

# The headless-Chromium test of the page.
browser-test:
    bash scripts/install-browser-test-deps.sh
    cargo build -p rtchat-server
    RTCHAT_SERVER_BIN="${CARGO_TARGET_DIR:-target}/debug/rtchat-server" bash scripts/browser-test.sh

# Format everything.
fmt:
    cargo fmt --all

# Lints as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Exactly what CI runs.
ci:
    bash .ci/run
