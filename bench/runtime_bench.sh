#!/usr/bin/env bash
# Runtime host benchmarks: memory store throughput and recall latency at 100,000 records,
# kernel tasks per second, and plugin invocation overhead. Each figure is measured by an
# aether script in bench/runtime/ (timed with now() inside the run, so start-up is not
# counted) against a fresh state directory. Results go in docs/performance.md.
#
# Usage: bench/runtime_bench.sh            (N=100000 records by default)
# Environment: N=records, AETHER=binary (default target/release/aether), SKIP_BUILD=1.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-100000}
AETHER=${AETHER:-target/release/aether}
if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    cargo build --release --locked
fi
STATE=$(mktemp -d)
trap 'rm -rf "$STATE"' EXIT

run() { "$AETHER" run "$@" --state-dir "$STATE"; }

echo "== memory: store, one commit per record (5,000 records)"
run bench/runtime/fill.aether --arg n=5000 --arg batch=1
rm -rf "$STATE"/*
echo "== memory: store in transactions of 1,000 ($N records)"
run bench/runtime/fill.aether --arg n="$N" --arg batch=1000
echo "== memory: recall at $N records"
run bench/runtime/recall.aether
echo "== kernel: tasks per second"
run bench/runtime/tasks.aether --arg n=20000
echo "== plugins: invocation overhead (sysinfo echo)"
AETHER_PLUGIN_PATH=workflows/plugins run bench/runtime/plugin.aether
echo "== state database size"
du -h "$STATE/aether.db"
