#!/usr/bin/env bash
# Journal overhead of durable runs: the same workflow run plainly and with --durable.
#   bench/durable/stores.aether   2,000 memory.store calls (journaled in the write's own
#                                 transaction: exactly once)
#   bench/durable/plugins.aether  100 plugin calls (intent committed with synchronous=FULL
#                                 before the call, outcome after: at most once)
#   bench/durable/reads.aether    2,000 memory.count calls (each result journaled with an
#                                 ordinary commit, replayed on resume)
# Prints, per workflow, the p50 run times, the journal overhead per effect at p50 and p95
# (difference of the run-time quantiles over the number of effects) and durable effects/s.
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
    # Per effect: the difference of the run-time quantiles (p50, p95) over the effects; the
    # effects per second of a durable run in one process (start-up included).
    jq -r --arg name "$name" --argjson n "$n" '
        def q(p): sort | .[((length - 1) * p | floor)];
        (.results[0].times) as $p | (.results[1].times) as $d |
        "\($name): plain p50 \($p | q(0.5) * 1000 | floor) ms, durable p50 \($d | q(0.5) * 1000 | floor) ms; " +
        "journal overhead per effect p50 \(((($d | q(0.5)) - ($p | q(0.5))) / $n * 1000000) | floor) us, " +
        "p95 \(((($d | q(0.95)) - ($p | q(0.95))) / $n * 1000000) | floor) us; " +
        "durable \(($n / ($d | q(0.5))) | floor) effects/s (\($n) effects, \($p | length) runs)"
    ' "$TMP/$name.json"
}

bench stores stores.aether 2000
bench plugins plugins.aether 100
bench reads reads.aether 2000
