#!/usr/bin/env bash
# Journal overhead of durable runs: the same workflow run plainly and with --durable.
#   bench/durable/stores.aether   2,000 memory.store calls (journaled in the write's own
#                                 transaction: exactly once)
#   bench/durable/plugins.aether  100 plugin calls (intent committed with synchronous=FULL
#                                 before the call, outcome after: at most once)
# Prints the mean time of each run and the difference per effect.
#
# Usage: bench/durable_bench.sh [AETHER_BINARY]   (default target/release/aether, built
#   with --locked unless SKIP_BUILD=1). Environment: RUNS=N timed runs (default 10).
# Results are recorded in docs/performance.md.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${RUNS:-10}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "durable_bench: RUNS must be a positive integer" >&2; exit 1; }
command -v hyperfine >/dev/null 2>&1 || { echo "durable_bench: hyperfine is required (apt-get install hyperfine)" >&2; exit 1; }
command -v jq >/dev/null 2>&1 || { echo "durable_bench: jq is required" >&2; exit 1; }
if (( $# == 0 )); then
    [[ "${SKIP_BUILD:-0}" == 1 ]] || cargo build --release --locked >&2
    set -- "$ROOT/target/release/aether"
fi
BIN=$1
[[ -x "$BIN" ]] || { echo "durable_bench: no binary at $BIN" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$ROOT/bench/durable"

bench() { # NAME FILE EFFECTS
    local name=$1 file=$2 n=$3
    # A fresh state directory for every run: memory.store de-duplicates.
    hyperfine -N --runs "$RUNS" --warmup 1 --prepare "rm -rf $TMP/s" \
        --export-json "$TMP/$name.json" \
        -n plain "$BIN run $file --arg tag=x --state-dir $TMP/s" \
        -n durable "$BIN run $file --arg tag=x --state-dir $TMP/s --durable" >/dev/null 2>&1
    jq -r --arg name "$name" --argjson n "$n" '
        (.results[0].mean) as $p | (.results[1].mean) as $d |
        "\($name): plain \($p * 1000 | floor) ms, durable \($d * 1000 | floor) ms, " +
        "journal overhead \((($d - $p) / $n * 1000000) | floor) us per effect (\($n) effects, mean of \(.results[0].times | length) runs)"
    ' "$TMP/$name.json"
}

bench stores stores.aether 2000
bench plugins plugins.aether 100
