#!/usr/bin/env bash
# Measure `aether fmt --check` throughput on the corpus bench/check_throughput.sh generates.
#
# Usage: bench/fmt_bench.sh
# Environment:
#   FILES=N         corpus size in files (default 3000)
#   SEED=S          corpus seed passed to gen_corpus.py (default 1)
#   RUNS=N          timed runs per measurement (default 5, at least 3)
#   AETHER=PATH     binary to measure (default target/release/aether)
#   SKIP_BUILD=1    do not run `cargo build --release --locked`
#
# `aether fmt --check` exits 1 when files would change and 20 when some do not parse (the
# corpus holds broken files on purpose): the exit status does not invalidate the timing.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

FILES=${FILES:-3000}
SEED=${SEED:-1}
RUNS=${RUNS:-5}
AETHER=${AETHER:-$ROOT/target/release/aether}
if (( RUNS < 3 )); then RUNS=3; fi

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "building: cargo build --release --locked" >&2
    cargo build --release --locked
fi
if [[ ! -x "$AETHER" ]]; then
    echo "error: $AETHER not found or not executable (build failed, or set AETHER=)" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aether-fmt-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
CORPUS="$WORK/corpus"
python3 "$ROOT/bench/gen_corpus.py" "$CORPUS" --files "$FILES" --seed "$SEED" >&2

BYTES=$(find "$CORPUS" -type f -name '*.aether' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
NFILES=$(find "$CORPUS" -type f -name '*.aether' | wc -l)
MB=$(awk -v b="$BYTES" 'BEGIN {printf "%.3f", b / 1e6}')

# median_seconds JOBS: median wall time of `aether fmt --check --jobs JOBS CORPUS`.
median_seconds() {
    local jobs=$1 times=() start end i
    "$AETHER" fmt --check --jobs "$jobs" "$CORPUS" >/dev/null 2>&1 || true # warm-up
    for ((i = 0; i < RUNS; i++)); do
        start=$(date +%s.%N)
        "$AETHER" fmt --check --jobs "$jobs" "$CORPUS" >/dev/null 2>&1 || true
        end=$(date +%s.%N)
        times+=("$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.6f", e - s}')")
    done
    printf '%s\n' "${times[@]}" | sort -g | awk '{t[NR] = $1} END {
        if (NR % 2) printf "%.6f\n", t[(NR + 1) / 2];
        else printf "%.6f\n", (t[NR / 2] + t[NR / 2 + 1]) / 2 }'
}

SUMMARY=$("$AETHER" fmt --check --jobs 1 "$CORPUS" 2>&1 >/dev/null | tail -n 1 || true)
echo "measuring with date, $RUNS runs each (median reported)" >&2
T1=$(median_seconds 1)
T2=$(median_seconds 2)

rate() { awk -v n="$1" -v t="$2" 'BEGIN {if (t > 0) printf "%.1f", n / t; else print "inf"}'; }

echo "corpus: $NFILES files, $MB MB ($BYTES bytes), seed $SEED"
echo "fmt --check says: $SUMMARY"
printf 'fmt --check --jobs 1: median %ss  %s MB/s  %s files/s\n' "$T1" "$(rate "$MB" "$T1")" "$(rate "$NFILES" "$T1")"
printf 'fmt --check --jobs 2: median %ss  %s MB/s  %s files/s\n' "$T2" "$(rate "$MB" "$T2")" "$(rate "$NFILES" "$T2")"
