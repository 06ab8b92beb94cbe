#!/usr/bin/env python3
"""Byte-for-byte comparison of two builds' parser output: the syntax tree and diagnostics
(`parse_dump --ast`, aether-syntax's example) and `aether check` (human and JSON) over a set
of files plus random mutants of them (tokens inserted or deleted, lines dropped or repeated,
indentation changed), so error recovery and its messages are compared too.

Usage:
  bench/parse_diff.py --old-dump OLD_PARSE_DUMP --new-dump NEW_PARSE_DUMP \
      --old-aether OLD_AETHER --new-aether NEW_AETHER [--mutants 1200] [--seed 7] FILE_OR_DIR...

Prints the files whose output differs (first differing lines) and a summary; exits 1 on any
difference.
"""

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile

PIECES = [
    "(", ")", "[", "]", "{", "}", ",", ":", ".", "=", "-", "+", "*", "not ", " in ", " and ",
    " or ", "x", "\"s\"", "'t", "1", "2.5", "10s", "if ", "elif ", "else:", "for ", "let ",
    "    ", "\t", " as y", " k=1", "==", "<", "!", "&&", "- ", "goal: ", "memory: ",
    "workflow:", "action a:", "return ", "emit ", "await ", "99999999999999999999",
]


def collect(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            for root, _, files in os.walk(p):
                out += [os.path.join(root, f) for f in files if f.endswith(".aether")]
        else:
            out.append(p)
    return sorted(out)


def mutate(src, rng):
    lines = src.split("\n")
    for _ in range(rng.randint(1, 3)):
        if not lines:
            break
        at = rng.randrange(len(lines))
        line = lines[at]
        col = rng.randint(0, len(line))
        kind = rng.randrange(6)
        if kind == 0:
            lines[at] = line[:col] + rng.choice(PIECES) + line[col:]
        elif kind == 1:
            end = line.find(" ", col)
            end = len(line) if end < 0 else end
            lines[at] = line[:col] + line[end:]
        elif kind == 2:
            del lines[at]
        elif kind == 3:
            lines[at] = " " * rng.choice([1, 2, 4]) + line
        elif kind == 4:
            lines[at] = line.lstrip()
        else:
            lines.insert(at, line)
    return "\n".join(lines)


# What differs between two runs of the same binary: a report's time stamp, a thread's id.
NOISE = [(re.compile(rb'"timestamp": "[^"]*"'), b'"timestamp": ""'),
         (re.compile(rb"thread '([^']*)' \(\d+\)"), rb"thread '\1'")]


def run(cmd):
    env = dict(os.environ, RUST_BACKTRACE="0")
    res = subprocess.run(cmd, capture_output=True, timeout=60, env=env)
    out, err = res.stdout, res.stderr
    for pat, rep in NOISE:
        out, err = pat.sub(rep, out), pat.sub(rep, err)
    return res.returncode, out, err


def first_diff(a, b):
    la, lb = a.decode(errors="replace").splitlines(), b.decode(errors="replace").splitlines()
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            return f"line {i + 1}:\n  old: {x[:200]}\n  new: {y[:200]}"
    return f"lengths {len(la)} vs {len(lb)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old-dump", required=True)
    ap.add_argument("--new-dump", required=True)
    ap.add_argument("--old-aether", required=True)
    ap.add_argument("--new-aether", required=True)
    ap.add_argument("--mutants", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", help="write the mutants here (default: a temporary directory)")
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()

    files = collect(args.paths)
    rng = random.Random(args.seed)
    tmp = args.keep or tempfile.mkdtemp(prefix="parse_diff_")
    os.makedirs(tmp, exist_ok=True)
    mutants = []
    for i in range(args.mutants):
        src_path = rng.choice(files)
        with open(src_path, encoding="utf-8", errors="surrogateescape") as f:
            src = f.read()
        path = os.path.join(tmp, f"m{i:05}.aether")
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(mutate(src, rng))
        mutants.append(path)

    differ = 0
    n_errors = 0
    for path in files + mutants:
        old = run([args.old_dump, path, "--ast"])
        new = run([args.new_dump, path, "--ast"])
        prefix = (path + ":").encode()
        if any(line.startswith(prefix) for line in old[1].splitlines()):
            n_errors += 1
        if old != new:
            differ += 1
            print(f"parse_dump differs: {path}: {first_diff(old[1] + old[2], new[1] + new[2])}")
    for fmt in ["json", "human"]:
        for group in [files, mutants]:
            # One process per 200 files keeps the outputs comparable and quick.
            for k in range(0, len(group), 200):
                chunk = group[k:k + 200]
                old = run([args.old_aether, "check", "--jobs", "1", "--format", fmt] + chunk)
                new = run([args.new_aether, "check", "--jobs", "1", "--format", fmt] + chunk)
                if old != new:
                    differ += 1
                    print(f"check --format {fmt} differs on {chunk[0]}..: "
                          f"{first_diff(old[1] + old[2], new[1] + new[2])}")
    total = len(files) + len(mutants)
    print(f"{total} files ({len(files)} given, {len(mutants)} mutants in {tmp}); "
          f"{n_errors} with diagnostics; {differ} differences")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
