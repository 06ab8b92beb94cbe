#!/usr/bin/env bash
# Measure `aether classify` on a generated tree of workflows: check only, and checked then
# run in-process (each clean file in a throwaway state directory, profile test).
#
# Usage: bench/classify_bench.sh
# Environment:
#   FILES=N       workflows (default 3000)
#   SEED=S        corpus seed for gen_corpus.py (default 1)
#   JOBS=N        classify --jobs (default: number of CPUs)
#   AETHER=PATH   binary (default target/release/aether)
#   SKIP_BUILD=1  do not run `cargo build --release --locked`
#
# The corpus is bench/gen_corpus.py's (realistic scripts that check clean and run: actions,
# loops, memory.store/recall), with failures injected deterministically: every 10th file
# gets a parse error, every 10th (offset 3) an unknown function (VALIDATION_ERROR), every
# 20th (offset 5) an out-of-range index at run time (RUNTIME_ERROR). No file times out,
# so the figure measures classification, not the budget.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
FILES=${FILES:-3000}
SEED=${SEED:-1}
AETHER=${AETHER:-$ROOT/target/release/aether}
JOBS=${JOBS:-$(nproc)}
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release --locked >&2
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aether-classify-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
CORPUS="$WORK/corpus"
python3 "$ROOT/bench/gen_corpus.py" "$CORPUS" --files "$FILES" --seed "$SEED" >&2
python3 - "$CORPUS" <<'PY'
import os, sys
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs if f.endswith(".aether"))
for i, path in enumerate(files):
    extra = None
    if i % 10 == 0:
        extra = "let = 3\n"
    elif i % 10 == 3:
        extra = "undefined_helper(1)\n"
    elif i % 20 == 5:
        extra = "let probe = [1, 2]\nprint(probe[7])\n"
    if extra:
        with open(path, "a") as f:
            f.write(extra)
PY

# seconds CMD...: wall time of one run, in seconds with millisecond precision.
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f", e - s}'
}

common=(--jobs "$JOBS" --no-history --markdown /dev/null)
cd "$WORK"
"$AETHER" classify corpus --check-only "${common[@]}" --output /dev/null >/dev/null 2>&1 || true  # warm the page cache
T_CHECK=$(seconds "$AETHER" classify corpus --check-only "${common[@]}" --output /dev/null)
T_RUN=$(seconds "$AETHER" classify corpus "${common[@]}" --output "$WORK/full.json")
python3 - "$WORK/full.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
cats = ", ".join(f"{k} {v['count']}" for k, v in s["categories"].items())
print(f"classified {s['total']} workflows: {s['failed']} failed ({cats})")
PY
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'classify --check-only, %s files, --jobs %s: %ss (%s files/s)\n' "$FILES" "$JOBS" "$T_CHECK" "$(awk -v n="$FILES" -v t="$T_CHECK" 'BEGIN {printf "%.0f", n / t}')"
printf 'classify (check + run), %s files, --jobs %s: %ss (%s files/s)\n' "$FILES" "$JOBS" "$T_RUN" "$(awk -v n="$FILES" -v t="$T_RUN" 'BEGIN {printf "%.0f", n / t}')"
