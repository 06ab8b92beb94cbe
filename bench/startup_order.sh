#!/usr/bin/env bash
# Regenerate src/startup.order: the functions of the `aether` binary that a hello-world
# `aether run` executes, one mangled name a line, sorted. build.rs hands the file to the
# linker (LLD's --symbol-ordering-file) for release builds, which places those functions
# first and together in .text, so start-up faults in a few 64 KB windows of code instead
# of ~40 scattered over 8 MB (docs/performance.md, start-up, session 8).
#
# The names carry the compiler's hashes: after a toolchain update or a large change, the
# old list still builds (unknown names are skipped) but orders less; run this again.
#
# Usage: bench/startup_order.sh [BINARY]   (default target/release/aether; needs valgrind)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:-target/release/aether}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out" --demangle=no --dump-instr=no \
    --compress-strings=no "$bin" run bench/programs/hello.aether >/dev/null 2>&1
# Every `fn=` block of the binary's own object (not libc's or ld.so's); unnamed code
# (`0x...`) and valgrind's own labels (`(below main)`) are left out.
python3 - "$out" "$(basename "$bin")" >src/startup.order <<'PY'
import sys
ob, names = None, set()
for line in open(sys.argv[1]):
    if line.startswith("ob="):
        ob = line[3:].strip()
    elif line.startswith("fn=") and ob and ob.endswith("/" + sys.argv[2]):
        name = line[3:].strip()
        if not name.startswith("0x") and " " not in name:
            names.add(name)
print("\n".join(sorted(names)))
PY
echo "src/startup.order: $(wc -l <src/startup.order) functions"
