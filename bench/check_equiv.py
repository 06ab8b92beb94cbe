#!/usr/bin/env python3
"""Byte-compare `aether check` output of two binaries over files and random mutants.

Usage (from the repository root):

    python3 bench/check_equiv.py BASE_BIN NEW_BIN [--mutants N] [--seed S] [FILES_OR_DIRS...]

Defaults: the repository's `.aether` files (`git ls-files '*.aether'`) as the seed set.
Every seed file and every mutant is checked by both binaries in the human format (stderr)
and with `--format json` (stdout, the `timestamp` fields masked); any difference in output
or exit status is printed and the script exits 1. Mutants are written to a temporary
directory: random insertions, deletions and duplications of tokens and characters, dropped
and duplicated lines, indentation changes, tabs, CRLF, odd bytes and invalid UTF-8.
"""

import os
import random
import re
import subprocess
import sys
import tempfile

TOKENS = [
    "(", ")", "[", "]", "{", "}", ",", ":", ".", "=", "+", "-", "*", "/", "%", "==",
    "!=", "<", "<=", ">", ">=", "!", "&&", "||", "&", "|", ";", "$", "`", "\"", "'",
    "\\", "#", "//", "if", "elif", "else", "for", "in", "while", "let", "action",
    "workflow", "return", "emit", "goal", "intent", "agent:", "visualize:", "parallel:",
    "transaction:", "on_error:", "meta", "policy", "not", "and", "or", "true", "null",
    "0x1F", "5min", "1e", "1.5s", "1h30m", "9223372036854775808", "-9223372036854775808",
    "99999999999999999999", "1_000", "3sx", "\"\\q\"", "\"\\u{110000}\"", "\"open",
    "x_1", "print", "memory.store", "\u00a0", "\u201c", "\ufeff", "\u00e9t\u00e9",
    "\t", "\n", "\r\n", "    ", "\x00", "\x0c",
]
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9A-Za-z_.]*|\"[^\"\n]*\"|'[^'\n]*'|\S")


def mutate(rng: random.Random, data: bytes) -> bytes:
    text = data.decode("utf-8", errors="surrogateescape")
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(12)
        lines = text.split("\n")
        if kind == 0 and text:  # insert a token
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(TOKENS) + text[at:]
        elif kind == 1 and text:  # delete a token
            spans = [m.span() for m in WORD.finditer(text)]
            if spans:
                s, e = rng.choice(spans)
                text = text[:s] + text[e:]
        elif kind == 2 and text:  # delete characters
            at = rng.randrange(len(text))
            text = text[:at] + text[at + rng.randint(1, 3):]
        elif kind == 3 and len(lines) > 1:  # drop a line
            del lines[rng.randrange(len(lines))]
            text = "\n".join(lines)
        elif kind == 4 and lines:  # duplicate a line
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif kind == 5 and lines:  # change indentation
            i = rng.randrange(len(lines))
            delta = rng.choice([-4, -2, -1, 1, 2, 4])
            if delta < 0:
                lines[i] = lines[i][min(-delta, len(lines[i]) - len(lines[i].lstrip(" "))):]
            else:
                lines[i] = " " * delta + lines[i]
            text = "\n".join(lines)
        elif kind == 6 and lines:  # tab in indentation
            i = rng.randrange(len(lines))
            lines[i] = "\t" + lines[i].lstrip(" ")
            text = "\n".join(lines)
        elif kind == 7:  # CRLF line ends
            text = text.replace("\n", "\r\n")
        elif kind == 8 and text:  # duplicate a token
            spans = [m.span() for m in WORD.finditer(text)]
            if spans:
                s, e = rng.choice(spans)
                text = text[:e] + " " + text[s:e] + text[e:]
        elif kind == 9 and text:  # swap two adjacent characters
            at = rng.randrange(max(1, len(text) - 1))
            text = text[:at] + text[at + 1:at + 2] + text[at:at + 1] + text[at + 2:]
        elif kind == 10 and text:  # remove a closing quote or bracket
            spots = [i for i, c in enumerate(text) if c in "\"')]}"]
            if spots:
                at = rng.choice(spots)
                text = text[:at] + text[at + 1:]
    out = text.encode("utf-8", errors="surrogateescape")
    if rng.randrange(12) == 0 and out:  # odd bytes / invalid UTF-8
        at = rng.randrange(len(out) + 1)
        out = out[:at] + bytes([rng.choice([0x80, 0xC3, 0xFF, 0xFE, 0xE2, 0x00])]) + out[at:]
    return out


def run(binary: str, args: list) -> tuple:
    p = subprocess.run([binary, "check", *args], capture_output=True, timeout=120)
    out = re.sub(rb'"timestamp": "[^"]*"', b'"timestamp": ""', p.stdout)
    return p.returncode, out, p.stderr


def collect(paths: list) -> list:
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                files += [os.path.join(root, n) for n in names if n.endswith(".aether")]
        else:
            files.append(p)
    return sorted(files)


def main() -> int:
    args = sys.argv[1:]
    mutants, seed = 1000, 1
    for flag in ("--mutants", "--seed"):
        if flag in args:
            i = args.index(flag)
            value = int(args[i + 1])
            del args[i:i + 2]
            if flag == "--mutants":
                mutants = value
            else:
                seed = value
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    base, new, paths = args[0], args[1], args[2:]
    if not paths:
        out = subprocess.run(["git", "ls-files", "*.aether"], capture_output=True, text=True)
        paths = out.stdout.split()
    seeds = collect(paths)
    rng = random.Random(seed)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="check_equiv_") as tmp:
        mdir = os.path.join(tmp, "mutants")
        os.mkdir(mdir)
        for n in range(mutants):
            src = rng.choice(seeds)
            with open(src, "rb") as f:
                data = f.read()
            with open(os.path.join(mdir, f"m{n:05}.aether"), "wb") as f:
                f.write(mutate(rng, data))
        # Whole sets in one call each (as `check` runs over a corpus); on a difference, each
        # file alone so that the report names the files.
        mutant_files = sorted(os.path.join(mdir, n) for n in os.listdir(mdir))
        failing = 0
        for name, files in (("seeds", seeds), ("mutants", mutant_files)):
            for fmt in (["--format", "json"], []):
                a = run(base, ["--jobs", "1", *fmt, *files])
                b = run(new, ["--jobs", "1", *fmt, *files])
                if fmt and name == "mutants":
                    failing = a[1].count(b'"ok": false')
                if a == b:
                    continue
                failures += 1
                print(f"DIFF {name} {' '.join(fmt) or 'human'}", file=sys.stderr)
                shown = 0
                for f in files:
                    if run(base, [*fmt, f]) != run(new, [*fmt, f]):
                        print(f"  {f}", file=sys.stderr)
                        if name == "mutants":
                            os.makedirs("/tmp/check_equiv_diffs", exist_ok=True)
                            with open(f, "rb") as src, open(
                                os.path.join("/tmp/check_equiv_diffs", os.path.basename(f)), "wb"
                            ) as dst:
                                dst.write(src.read())
                        shown += 1
                        if shown == 5:
                            break
    print(
        f"{len(seeds)} seed files, {mutants} mutants (seed {seed}, {failing} failing the check): "
        + ("identical output" if not failures else f"{failures} differing runs")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
