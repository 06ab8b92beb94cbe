#!/usr/bin/env python3
"""Time commands one run of each in turn, ROUNDS times, and print medians.

On a machine whose speed drifts from minute to minute (a shared VM), hyperfine's
"all runs of A, then all runs of B" puts the drift into the ratio; taking one run
of each command in turn puts it into every command alike.

Usage: bench/interleave.py ROUNDS NAME=COMMAND [NAME=COMMAND ...]
  e.g. bench/interleave.py 21 "new=target/release/aether run bench/programs/fib.aether" \
                              "lua=lua5.4 bench/programs/fib.lua"
Prints, per command: the median and minimum wall time and the median CPU time
(user + system of the child), in ms; the first command's median divided into the
others' as ratios.
"""
import resource
import shlex
import statistics
import subprocess
import sys
import time


def main() -> int:
    if len(sys.argv) < 3 or "=" not in "".join(sys.argv[2:]):
        print(__doc__, file=sys.stderr)
        return 2
    rounds = int(sys.argv[1])
    cmds = [arg.split("=", 1) for arg in sys.argv[2:]]
    wall = {name: [] for name, _ in cmds}
    cpu = {name: [] for name, _ in cmds}
    for _ in range(rounds):
        for name, cmd in cmds:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(shlex.split(cmd), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            wall[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime
                             + after.ru_stime - before.ru_stime)
    first = statistics.median(wall[cmds[0][0]])
    for name, _ in cmds:
        med = statistics.median(wall[name])
        print(f"{name:12s} wall median {med * 1000:9.1f} ms  min {min(wall[name]) * 1000:9.1f}"
              f"  cpu median {statistics.median(cpu[name]) * 1000:9.1f} ms"
              f"  ratio to {cmds[0][0]} {med / first:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
