#!/usr/bin/env bash
# Measure `aether verify --strict` throughput on a generated, signed corpus.
#
# Usage: bench/verify_throughput.sh        (FILES=3000 SEED=1 RUNS=5 by default)
# Prints files/s and MB/s for --strict verification (risk scoring included), and for
# `aether check --strict-signatures` (verification plus full checking).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FILES=${FILES:-3000}
SEED=${SEED:-1}
RUNS=${RUNS:-5}
AETHER=${AETHER:-$ROOT/target/release/aether}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release --locked >&2
fi
if ! command -v hyperfine >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y hyperfine >&2 || { apt-get update >&2 && apt-get install -y hyperfine >&2; }
    else
        echo "error: hyperfine is required (apt-get install -y hyperfine)" >&2
        exit 1
    fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aether-verify-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
python3 "$ROOT/bench/gen_corpus.py" "$WORK/corpus" --files "$FILES" --seed "$SEED" >&2
cd "$WORK"
"$AETHER" keygen --out keys --name bench >/dev/null 2>&1
mkdir -p .aetherra/keys/trusted && cp keys/bench.pub .aetherra/keys/trusted/
find corpus -name '*.aether' -print0 | xargs -0 "$AETHER" sign --key keys/bench.key >/dev/null
BYTES=$(find corpus -name '*.aether' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
NFILES=$(find corpus -name '*.aether' | wc -l)

median() {
    hyperfine --style none --warmup 1 --runs "$RUNS" --export-json "$WORK/h.json" "$1" >&2
    python3 -c 'import json,sys; print("%.6f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$WORK/h.json"
}
t_verify=$(median "\"$AETHER\" verify --strict corpus >/dev/null 2>&1")
t_check=$(median "\"$AETHER\" check --strict-signatures --jobs 1 corpus >/dev/null 2>&1")
awk -v n="$NFILES" -v b="$BYTES" -v v="$t_verify" -v c="$t_check" 'BEGIN {
    printf "corpus: %d signed files, %.3f MB\n", n, b / 1e6
    printf "verify --strict:                 median %.3fs  %.0f files/s  %.1f MB/s\n", v, n / v, b / 1e6 / v
    printf "check --strict-signatures -j 1:  median %.3fs  %.0f files/s  %.1f MB/s\n", c, n / c, b / 1e6 / c
}'
