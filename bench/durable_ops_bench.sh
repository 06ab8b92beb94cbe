#!/usr/bin/env bash
# Durable-run operations (issue #13), each with hyperfine on the release binary:
#   resume   `runs resume` of a run with 1,000 journal entries whose last effect is
#            indeterminate: the replay of the 1,000 entries, up to the IndeterminateError
#   list     `runs list` of 1,000 interrupted runs (and 1 finished)
#   resume-all  `runs resume` of each of the 1,000 interrupted runs (one process each)
# The interrupted states are made by editing a finished run's rows with sqlite3 (status
# `running`, a dead owner, the last outcome turned back into an intent), so nothing depends on
# when a kill lands.
#
# Usage: bench/durable_ops_bench.sh [AETHER_BINARY]   (default target/release/aether, built
#   with --locked unless SKIP_BUILD=1). Needs hyperfine, jq and sqlite3.
# Results are recorded in docs/performance.md.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
for tool in hyperfine jq sqlite3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "durable_ops_bench: $tool is required" >&2; exit 1; }
done
if (( $# == 0 )); then
    [[ "${SKIP_BUILD:-0}" == 1 ]] || cargo build --release --locked >&2
    set -- "$ROOT/target/release/aether"
fi
BIN=$1
[[ -x "$BIN" ]] || { echo "durable_ops_bench: no binary at $BIN" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$ROOT/bench/durable"
export AETHERRA_QUIET=1
S="$TMP/s"
DB="$S/aether.db"

mean_ms() { jq -r '.results[0] | "mean \(.mean * 1000 | . * 10 | floor / 10) ms, median \(.median * 1000 | . * 10 | floor / 10) ms, max \(.max * 1000 | . * 10 | floor / 10) ms (\(.times | length) runs)"' "$1"; }

# A run with 1,000 outcomes, then an intent without outcome.
"$BIN" run replay.aether --id big --arg tag=x --state-dir "$S" >/dev/null
INTERRUPT="UPDATE durable_runs SET status = 'running', result = NULL, owner_host = 'gone', owner_pid = 1, lease_until = 0;"
sqlite3 "$DB" "$INTERRUPT UPDATE journal SET kind = 'intent', result = NULL, completion = NULL WHERE seq = 1001;"
echo "journal entries of run big: $(sqlite3 "$DB" "SELECT COUNT(*) FROM journal WHERE run_id = 'big'")"
hyperfine -N -i --runs 20 --warmup 2 --export-json "$TMP/resume.json" \
    -n resume "$BIN runs resume big --state-dir $S" >/dev/null 2>&1
echo "resume (replay 1,000 entries): $(mean_ms "$TMP/resume.json")"

# 1,000 interrupted runs: copies of a small run, each with its journal.
"$BIN" run plugins.aether --id proto --state-dir "$S" >/dev/null
sqlite3 "$DB" "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 1000)
    INSERT INTO durable_runs (id, file, script_sha256, args, status, owner_host, owner_pid,
        owner_start, lease_until, result, created_at, updated_at)
    SELECT 'i' || k, file, script_sha256, args, 'running', 'gone', 1, NULL, 0, NULL, created_at, updated_at
    FROM durable_runs, n WHERE id = 'proto';
    INSERT INTO journal (run_id, fiber, seq, completion, name, digest, kind, result, started_at, ended_at)
    SELECT 'i' || k, fiber, seq, completion, name, digest, kind, result, started_at, ended_at
    FROM journal, (WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 1000) SELECT k FROM n)
    WHERE run_id = 'proto';"
hyperfine -N --runs 20 --warmup 2 --export-json "$TMP/list.json" \
    -n list "$BIN runs list --status running --state-dir $S" >/dev/null 2>&1
echo "runs list (1,002 runs): $(mean_ms "$TMP/list.json")"
start=$(date +%s%N)
"$BIN" runs list --status running --state-dir "$S" | awk '{print $1}' | grep '^i' \
    | xargs -n 1 -I{} "$BIN" runs resume {} --state-dir "$S" >/dev/null 2>&1 || true
total_ms=$(( ($(date +%s%N) - start) / 1000000 ))
done=$(sqlite3 "$DB" "SELECT COUNT(*) FROM durable_runs WHERE status = 'succeeded' AND id LIKE 'i%'")
echo "list + resume 1,000 interrupted runs (each replays its 100 entries and finishes): ${total_ms} ms, $done succeeded"
