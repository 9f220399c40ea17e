#!/usr/bin/env bash
# Builds the fuzz targets with cargo-fuzz and runs each for a while, two at a time: CI runs
# it for 60 s per target, a campaign for longer (docs/fuzzing.md).
#
#   fuzz/run.sh [SECONDS] [TARGET...]      default: 60 s, every target
#
# Environment:
#   RTCHAT_FUZZ_DIR   build and corpus cache (default: beside CARGO_TARGET_DIR, with -fuzz
#                     appended, or ~/.cache/rtchat-target-fuzz): kept between runs, so builds
#                     are warm and each run goes on from the corpus the last one grew
#   FUZZ_JOBS         targets run at once (default 2: one per core of the CI machine)
#   FUZZ_TOOLCHAIN    auto (default: nightly when rustup has it, else stable), nightly, or
#                     stable (the default toolchain with RUSTC_BOOTSTRAP=1, as on CI
#                     machines without nightly)
#   FUZZ_SANITIZER    cargo-fuzz's -s (default none: the code is safe Rust, and AddressSanitizer
#                     made the targets 8 to 12 times slower)
#
# Needs nightly for libFuzzer's flags: `cargo +nightly` when rustup has a nightly toolchain,
# otherwise the default toolchain with RUSTC_BOOTSTRAP=1 (nothing is downloaded). Installs
# cargo-fuzz from crates.io when it is missing. Exits non-zero when a target fails, after
# printing its crash and the path of the input that caused it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
jobs="${FUZZ_JOBS:-2}"
sanitizer="${FUZZ_SANITIZER:-none}"
CARGO_FUZZ_VERSION=0.13.2

if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    default_dir="${CARGO_TARGET_DIR%/}-fuzz"
else
    default_dir="$HOME/.cache/rtchat-target-fuzz"
fi
fuzz_dir="${RTCHAT_FUZZ_DIR:-$default_dir}"
mkdir -p "$fuzz_dir/logs"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# Never `cargo +nightly` on a toolchain rustup does not have: it would try to download it.
toolchain=()
case "${FUZZ_TOOLCHAIN:-auto}" in
    nightly) use_nightly=true ;;
    stable) use_nightly=false ;;
    auto)
        use_nightly=false
        if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
            use_nightly=true
        fi
        ;;
    *)
        echo "FUZZ_TOOLCHAIN must be auto, nightly or stable" >&2
        exit 2
        ;;
esac
if "$use_nightly"; then
    toolchain=(+nightly)
    echo "toolchain: nightly ($(cargo +nightly --version))"
else
    export RUSTC_BOOTSTRAP=1
    echo "toolchain: $(cargo --version) with RUSTC_BOOTSTRAP=1 (no nightly)"
fi
fuzz() {
    cargo "${toolchain[@]}" fuzz "$@"
}
build_flags=(--fuzz-dir fuzz --target-dir "$fuzz_dir/target" -s "$sanitizer")

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(fuzz list --fuzz-dir fuzz)
fi

echo "building ${targets[*]} (sanitizer: $sanitizer, in $fuzz_dir/target)"
start=$(date +%s)
fuzz build "${build_flags[@]}"
echo "built in $(($(date +%s) - start)) s"

# One target: libFuzzer on the corpus kept in the cache (new inputs are written there) and
# the committed seeds, with the target's dictionary when it has one.
run_target() {
    local target="$1" corpus="$fuzz_dir/corpus/$1" log="$fuzz_dir/logs/$1.log"
    local options=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
    local dict="fuzz/dicts/$target.dict"
    case "$target" in parser | session | chat_connection) dict=fuzz/dicts/stomp.dict ;; esac
    if [ -f "$dict" ]; then
        options+=(-dict="$dict")
    fi
    mkdir -p "$corpus" "fuzz/seeds/$target"
    fuzz run "${build_flags[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- "${options[@]}" \
        >"$log" 2>&1
}

start=$(date +%s)
failed=()
pending=("${targets[@]}")
while [ "${#pending[@]}" -gt 0 ]; do
    batch=("${pending[@]:0:$jobs}")
    pending=("${pending[@]:$jobs}")
    pids=()
    for target in "${batch[@]}"; do
        echo "fuzzing $target for $seconds s"
        run_target "$target" &
        pids+=($!)
    done
    for i in "${!batch[@]}"; do
        target="${batch[$i]}"
        log="$fuzz_dir/logs/$target.log"
        if wait "${pids[$i]}"; then
            # libFuzzer's last status line: executions, coverage, corpus, speed.
            echo "$target: ok: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)"
        else
            failed+=("$target")
            {
                echo "$target: FAILED (whole log: $log)"
                # The panic (or libFuzzer's verdict: timeout, out of memory), without the
                # backtrace, then the failing input and the command that replays it.
                grep -m 1 -A 3 -E "panicked at" "$log" || true
                grep -m 1 -E "^==[0-9]+== ERROR: libFuzzer" "$log" || true
                grep -m 1 -A 12 -E "^Failing input:" "$log" ||
                    grep -E "Test unit written to" "$log" || tail -n 20 "$log"
            } >&2
        fi
    done
done
echo "fuzzed ${#targets[@]} targets in $(($(date +%s) - start)) s"

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing found a failure in: ${failed[*]}" >&2
    exit 1
fi
