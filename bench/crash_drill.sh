#!/usr/bin/env bash
# Crash drill for durable runs (issue #13; not a test): N durable runs of
# bench/durable/drill.aether, each making 12 plugin calls (at most once: the `ledger` plugin
# appends its idempotency key to a ledger file) and 12 memory writes (exactly once:
# `escalate_to`, never de-duplicated), SIGKILLed at random moments and resumed until done.
# An interrupted plugin call surfaces as needs_attention; the drill then plays the operator:
# `runs resolve ID SEQ --succeeded null` when the key is in the ledger, `--retry` when not.
# Prints: runs completed, effects expected, effects in the ledger and in memory, duplicates,
# lost, interrupted at-most-once effects and how many surfaced. Exit 1 when a requirement
# fails (a duplicate, a lost effect, an interrupted effect not surfaced, a run not done).
#
# Usage: bench/crash_drill.sh [N] [AETHER_BINARY]   (N default 200; the binary defaults to
#   target/release/aether, built with --locked unless SKIP_BUILD=1). Needs sqlite3.
# Results are recorded in docs/reliability.md.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-200}
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "crash_drill: N must be a positive integer" >&2; exit 1; }
command -v sqlite3 >/dev/null 2>&1 || { echo "crash_drill: sqlite3 is required" >&2; exit 1; }
if (( $# < 2 )); then
    [[ "${SKIP_BUILD:-0}" == 1 ]] || cargo build --release --locked >&2
    BIN="$ROOT/target/release/aether"
else
    BIN=$2
fi
[[ -x "$BIN" ]] || { echo "crash_drill: no binary at $BIN" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

TMP=$(mktemp -d)
if [[ "${KEEP:-0}" == 1 ]]; then echo "crash_drill: keeping $TMP" >&2; else trap 'rm -rf "$TMP"' EXIT; fi
STATE="$TMP/state"
export DRILL_LEDGER="$TMP/ledger" AETHERRA_QUIET=1 NO_COLOR=1
: > "$DRILL_LEDGER"
cd "$ROOT/bench/durable"
DB="$STATE/aether.db"
PLUGINS=12 WRITES=12

q() { sqlite3 "$DB" "$1"; }
status() { q "SELECT status FROM durable_runs WHERE id = '$1'"; }

# One undisturbed run calibrates the kill window.
start=$(date +%s%N)
"$BIN" run drill.aether --id calib --arg run=calib --state-dir "$STATE" >/dev/null 2>&1 \
    || { echo "crash_drill: the calibration run failed" >&2; exit 1; }
# Three quarters of it: most kills land inside a run (a warm run is quicker).
window_ms=$(( ($(date +%s%N) - start) * 3 / 4 / 1000000 ))
(( window_ms > 0 )) || window_ms=1
q "DELETE FROM journal; DELETE FROM durable_runs; DELETE FROM memory WHERE kind = 'escalation';"
: > "$DRILL_LEDGER"

# Run CMD... in the background and SIGKILL it after a random delay within the window (it may
# finish first). Returns 0 when it was killed.
kill_randomly() {
    "$@" >/dev/null 2>&1 &
    local pid=$! delay=$(( RANDOM % (window_ms + 1) ))
    sleep "$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 1000 }')"
    if kill -9 "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; return 0; fi
    wait "$pid" 2>/dev/null || true
    return 1
}

kills=0 interrupted=0 surfaced=0 resolved_done=0 resolved_retry=0 completed=0
drill_start=$(date +%s)
for ((k = 1; k <= N; k++)); do
    id="d$k"
    kill_randomly "$BIN" run drill.aether --id "$id" --arg "run=$id" --state-dir "$STATE" && kills=$((kills + 1))
    for ((round = 0; round < 50; round++)); do
        s=$(status "$id")
        [[ "$s" == succeeded ]] && break
        if [[ -z "$s" ]]; then
            # Killed before the run was created: start it again (`--id` attaches or creates).
            kill_randomly "$BIN" run drill.aether --id "$id" --arg "run=$id" --state-dir "$STATE" && kills=$((kills + 1))
            continue
        fi
        open=$(q "SELECT fiber || ':' || seq FROM journal WHERE run_id = '$id' AND kind = 'intent'")
        if [[ -n "$open" && "$s" != needs_attention ]]; then
            interrupted=$((interrupted + 1))
            set +e
            "$BIN" runs resume "$id" --state-dir "$STATE" >/dev/null 2>&1
            set -e
            [[ "$(status "$id")" == needs_attention ]] && surfaced=$((surfaced + 1))
            continue
        fi
        # Resolved already when a resume was killed before it claimed the run: just resume.
        if [[ "$s" == needs_attention && -n "$open" ]]; then
            # The operator's check: a plugin started by the killed process may still be
            # finishing (it is not in aether's process any more); give it a moment first.
            sleep 1
            if grep -qx "$id:$open" "$DRILL_LEDGER"; then
                "$BIN" runs resolve "$id" "$open" --succeeded 1 --state-dir "$STATE" >/dev/null 2>&1
                resolved_done=$((resolved_done + 1))
            else
                "$BIN" runs resolve "$id" "$open" --retry --state-dir "$STATE" >/dev/null 2>&1
                resolved_retry=$((resolved_retry + 1))
            fi
        fi
        # A resume is killed too, one time in three.
        if (( RANDOM % 3 == 0 )); then
            kill_randomly "$BIN" runs resume "$id" --state-dir "$STATE" && kills=$((kills + 1))
        else
            "$BIN" runs resume "$id" --state-dir "$STATE" >/dev/null 2>&1 || true
        fi
    done
    if [[ "$(status "$id")" == succeeded ]]; then
        completed=$((completed + 1))
    else
        echo "crash_drill: run $id not done: $(status "$id"), $(q "SELECT result FROM durable_runs WHERE id = '$id'")" >&2
    fi
done
elapsed=$(( $(date +%s) - drill_start ))

# Expected: plugin keys dK:0:1,3,...,23 and memory messages "dK i" for i < 12.
expected_keys="$TMP/expected_keys" expected_mem="$TMP/expected_mem"
for ((k = 1; k <= N; k++)); do
    for ((i = 0; i < PLUGINS; i++)); do echo "d$k:0:$((2 * i + 1))"; done
    for ((i = 0; i < WRITES; i++)); do echo "d$k $i"; done >> "$expected_mem"
done | sort > "$expected_keys"
sort -o "$expected_mem" "$expected_mem"
q "SELECT json_extract(content, '$.message') FROM memory WHERE kind = 'escalation'" | sort > "$TMP/memory"
sort "$DRILL_LEDGER" > "$TMP/ledger_sorted"

ledger_n=$(wc -l < "$DRILL_LEDGER")
memory_n=$(wc -l < "$TMP/memory")
dup_ledger=$(uniq -d "$TMP/ledger_sorted" | wc -l)
dup_memory=$(uniq -d "$TMP/memory" | wc -l)
lost_ledger=$(comm -23 "$expected_keys" <(sort -u "$TMP/ledger_sorted") | wc -l)
lost_memory=$(comm -23 "$expected_mem" <(sort -u "$TMP/memory") | wc -l)

uniq -d "$TMP/ledger_sorted" | sed 's/^/crash_drill: duplicate plugin effect /' >&2
echo "crash drill: $N runs, $kills SIGKILLs, ${elapsed}s (kill window ${window_ms} ms)"
echo "runs completed:              $completed / $N"
echo "effects expected:            $((N * PLUGINS)) plugin calls, $((N * WRITES)) memory writes"
echo "effects in the ledger:       $ledger_n"
echo "memory writes recorded:      $memory_n"
echo "duplicates:                  $dup_ledger plugin (at most once), $dup_memory memory (exactly once)"
echo "lost:                        $lost_ledger plugin, $lost_memory memory"
echo "interrupted at-most-once:    $interrupted, surfaced as needs_attention: $surfaced"
echo "operator resolutions:        $resolved_done --succeeded (key in the ledger), $resolved_retry --retry (not)"
if (( completed != N || dup_ledger + dup_memory + lost_ledger + lost_memory != 0 || surfaced != interrupted )); then
    echo "crash drill: FAILED" >&2
    exit 1
fi
echo "crash drill: passed"
