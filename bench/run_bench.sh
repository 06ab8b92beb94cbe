#!/usr/bin/env bash
# Run the same small programs in aether, python3 and lua5.4 and compare.
#
# What it measures: wall-clock time of whole processes (start-up included)
# for the programs in bench/programs/, each written three times with the
# same algorithm (NAME.aether, NAME.py, NAME.lua):
#
#   fib      recursive fib(30): action calls and integer arithmetic
#   loop     10,000,000-iteration integer `while` loop
#   strings  build a string with 200,000 repeated concatenations, print its length
#   churn    200,000 map inserts, list appends and read-backs, print a checksum
#   hello    start-up cost: `print("hello")` (hyperfine -N, 50 runs), in ms
#
# Before timing anything it checks that the three versions of each program
# print exactly the same stdout, and fails loudly if they do not. Timings use
# hyperfine (--warmup 1 --runs $RUNS) and are summarised as a markdown table of
# mean times and aether/python, aether/lua ratios (> 1 means aether is slower).
# Results are recorded in docs/performance.md.
#
# Usage: bench/run_bench.sh [PROGRAM...]     e.g. bench/run_bench.sh fib loop
#   With no arguments runs fib, loop, strings, churn and hello.
# Environment:
#   RUNS=N        timed runs per command (default 5)
#   AETHER=PATH   binary to measure (default target/release/aether)
#   BASE=PATH     an older aether binary to time in the same hyperfine run (column
#                 `base`, and the ratio new/base: < 1 means the new binary is faster)
#   SKIP_BUILD=1  do not run `cargo build --release --locked`
#   PYTHON=PATH   python interpreter (default: sys.executable of `python3`)
#
# Missing lua5.4 or hyperfine are installed with apt-get (through sudo when
# not root). Note: the honest Lua `strings` (plain `..`, no table.concat) is
# quadratic and can take tens of seconds per run.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PROGRAMS_DIR=bench/programs
RUNS=${RUNS:-5}
AETHER=${AETHER:-$ROOT/target/release/aether}
ALL=(fib loop strings churn hello)

die() {
    echo "run_bench: $*" >&2
    exit 1
}

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"

if (( $# > 0 )); then
    PROGRAMS=("$@")
else
    PROGRAMS=("${ALL[@]}")
fi
for p in "${PROGRAMS[@]}"; do
    [[ -f "$PROGRAMS_DIR/$p.aether" ]] || die "unknown program '$p' (known: ${ALL[*]})"
    if [[ "$p" != hello ]]; then
        [[ -f "$PROGRAMS_DIR/$p.py" && -f "$PROGRAMS_DIR/$p.lua" ]] ||
            die "program '$p' needs $p.aether, $p.py and $p.lua in $PROGRAMS_DIR"
    fi
done

# --- tools ------------------------------------------------------------------

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    else
        sudo "$@"
    fi
}

ensure_tool() { # COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "run_bench: $1 not found, installing package $2" >&2
    if ! as_root apt-get install -y "$2"; then
        as_root apt-get update
        as_root apt-get install -y "$2"
    fi
    command -v "$1" >/dev/null 2>&1 || die "could not install $1 (package $2)"
}

ensure_tool lua5.4 lua5.4
ensure_tool hyperfine hyperfine
command -v python3 >/dev/null 2>&1 || die "python3 is required"
# Time the real interpreter, not a wrapper such as a pyenv shim (a bash
# script that adds a few hundred milliseconds to every start).
PYTHON=${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
[[ -x "$PYTHON" ]] || die "python interpreter not found at '$PYTHON'"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "run_bench: cargo build --release --locked" >&2
    cargo build --release --locked
fi
[[ -x "$AETHER" ]] || die "aether binary not found at $AETHER"
BASE=${BASE:-}
[[ -z "$BASE" || -x "$BASE" ]] || die "base binary not found at $BASE"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Shell command line for PROGRAM in LANG (hyperfine runs it through sh).
command_for() { # LANG PROGRAM
    local file
    case "$1" in
        aether) file=$(printf '%q' "$ROOT/$PROGRAMS_DIR/$2.aether")
                echo "$(printf '%q' "$AETHER") run $file" ;;
        base) file=$(printf '%q' "$ROOT/$PROGRAMS_DIR/$2.aether")
              echo "$(printf '%q' "$BASE") run $file" ;;
        python3) echo "$(printf '%q' "$PYTHON") $(printf '%q' "$ROOT/$PROGRAMS_DIR/$2.py")" ;;
        lua5.4) echo "lua5.4 $(printf '%q' "$ROOT/$PROGRAMS_DIR/$2.lua")" ;;
    esac
}

LANGS=(aether python3 lua5.4)
TIMED_LANGS=("${LANGS[@]}")
[[ -z "$BASE" ]] || TIMED_LANGS=(base "${LANGS[@]}")
TIMED=()
DO_HELLO=0
for p in "${PROGRAMS[@]}"; do
    if [[ "$p" == hello ]]; then DO_HELLO=1; else TIMED+=("$p"); fi
done

# --- 1. same output in all three languages ------------------------------------

mismatch=0
for p in "${TIMED[@]}"; do
    for lang in "${LANGS[@]}"; do
        cmd=$(command_for "$lang" "$p")
        if ! sh -c "$cmd" >"$TMP/$p.$lang.out" 2>"$TMP/$p.$lang.err"; then
            echo "run_bench: FAILED: $p ($lang) exited with an error: $cmd" >&2
            cat "$TMP/$p.$lang.err" >&2
            exit 1
        fi
    done
    if cmp -s "$TMP/$p.aether.out" "$TMP/$p.python3.out" &&
        cmp -s "$TMP/$p.aether.out" "$TMP/$p.lua5.4.out"; then
        echo "run_bench: $p: outputs agree: $(head -c 200 "$TMP/$p.aether.out")" >&2
    else
        mismatch=1
        echo "run_bench: OUTPUT MISMATCH for $p:" >&2
        for lang in "${LANGS[@]}"; do
            printf '  %-8s %s\n' "$lang:" "$(head -c 200 "$TMP/$p.$lang.out" | tr '\n' '|')" >&2
        done
    fi
done
(( mismatch == 0 )) || die "the three languages disagree; not timing anything"

# --- 2. timings ---------------------------------------------------------------

for p in "${TIMED[@]}"; do
    echo "run_bench: timing $p ($RUNS runs each)" >&2
    args=()
    for lang in "${TIMED_LANGS[@]}"; do
        args+=(-n "$lang" "$(command_for "$lang" "$p")")
    done
    hyperfine --warmup 1 --runs "$RUNS" --export-json "$TMP/$p.json" "${args[@]}" >&2
done

if (( DO_HELLO )); then
    echo "run_bench: timing start-up (hello, 50 runs each)" >&2
    hello=(-n aether "$(command_for aether hello)")
    [[ -z "$BASE" ]] || hello+=(-n base "$(command_for base hello)")
    hyperfine -N --warmup 5 --runs 50 --export-json "$TMP/hello.json" "${hello[@]}" \
        -n python3 "$(printf '%q' "$PYTHON") -c 'print(\"hello\")'" \
        -n lua5.4 "lua5.4 -e 'print(\"hello\")'" >&2
fi

# --- 3. summary -----------------------------------------------------------------

echo
echo "$("$AETHER" --version 2>/dev/null || echo "$AETHER")," \
    "$("$PYTHON" --version 2>&1) ($PYTHON), $(lua5.4 -v 2>&1 | cut -d' ' -f1,2)," \
    "$(uname -sm), RUNS=$RUNS"
echo
python3 - "$TMP" "$DO_HELLO" "${TIMED[@]}" <<'PY'
import json
import os
import sys

tmp, do_hello, programs = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]


def means(name):
    with open(os.path.join(tmp, name + ".json")) as f:
        return {r["command"]: r["mean"] for r in json.load(f)["results"]}


def ratio(x, y):
    # Two decimals, but two significant digits below 0.1 (0.00057, not 0.00).
    r = x / y
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


if programs:
    with_base = "base" in means(programs[0])
    head = "| program | aether (s) |"
    rule = "|---|---:|"
    if with_base:
        head += " base (s) |"
        rule += "---:|"
    head += " python3 (s) | lua5.4 (s) | **aether/lua** | aether/python |"
    rule += "---:|---:|---:|---:|"
    if with_base:
        head += " **aether/base** |"
        rule += "---:|"
    print(head)
    print(rule)
    for p in programs:
        m = means(p)
        a, py, lua = m["aether"], m["python3"], m["lua5.4"]
        row = f"| {p} | {a:.3f} |"
        if with_base:
            row += f" {m['base']:.3f} |"
        row += f" {py:.3f} | {lua:.3f} | **{ratio(a, lua)}** | {ratio(a, py)} |"
        if with_base:
            row += f" **{ratio(a, m['base'])}** |"
        print(row)
    print()
    print("Ratios are mean times in the same hyperfine run: aether/lua < 1 means aether is")
    print("faster than Lua 5.4" + (", aether/base < 1 means faster than the base binary." if with_base else "."))

if do_hello:
    m = means("hello")
    if programs:
        print()
    base = f", base {m['base'] * 1000:.1f} ms" if "base" in m else ""
    print(f"start-up (hello, mean of 50 runs): aether {m['aether'] * 1000:.1f} ms{base}"
          f" (python3 {m['python3'] * 1000:.1f} ms, lua5.4 {m['lua5.4'] * 1000:.1f} ms)")
PY
