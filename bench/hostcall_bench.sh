#!/usr/bin/env bash
# Time calls through the function table: bench/programs/hostcalls.aether makes
# 1,000,000 iterations of pure native and VM intrinsic calls (`abs`, `len`, `int`,
# `now`) and 50,000 runtime host calls (`memory.count()`, one SQLite query each).
#
# Usage: bench/hostcall_bench.sh [AETHER_BINARY...]
#   With no argument times target/release/aether (built with --locked unless
#   SKIP_BUILD=1); with several, times each of them in one hyperfine run, so a
#   before/after pair is measured under the same load.
# Environment: RUNS=N timed runs per binary (default 5).
# Results are recorded in docs/performance.md.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${RUNS:-5}
PROGRAM=$ROOT/bench/programs/hostcalls.aether

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "hostcall_bench: RUNS must be a positive integer" >&2; exit 1; }
command -v hyperfine >/dev/null 2>&1 || { echo "hostcall_bench: hyperfine is required (apt-get install hyperfine)" >&2; exit 1; }

if (( $# == 0 )); then
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        cargo build --release --locked >&2
    fi
    set -- "$ROOT/target/release/aether"
fi

STATE=$(mktemp -d)
trap 'rm -rf "$STATE"' EXIT

args=()
expected=""
for bin in "$@"; do
    [[ -x "$bin" ]] || { echo "hostcall_bench: no binary at $bin" >&2; exit 1; }
    # Every binary must print the same two lines before anything is timed.
    out=$("$bin" run --state-dir "$STATE/check" "$PROGRAM")
    if [[ -n "$expected" && "$out" != "$expected" ]]; then
        echo "hostcall_bench: $bin prints '$out', not '$expected'" >&2
        exit 1
    fi
    expected=$out
    cmd="$(printf '%q' "$bin") run --state-dir $(printf '%q' "$STATE/s") $(printf '%q' "$PROGRAM")"
    args+=(-n "$bin" "$cmd")
done
echo "hostcall_bench: output: $(echo "$expected" | tr '\n' ' ')" >&2
hyperfine --warmup 1 --runs "$RUNS" "${args[@]}"
