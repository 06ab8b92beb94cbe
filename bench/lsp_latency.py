#!/usr/bin/env python3
"""Time from `didChange` to `publishDiagnostics` of `aether lsp` on generated files.

Usage: bench/lsp_latency.py [LINES ...]         (default: 2000 20000)
Environment:
  AETHER=PATH   binary to measure (default target/release/aether; build it first with
                `cargo build --release --locked`)
  RUNS=N        edits timed per size (default 30); the median and p95 are printed

Each run opens a generated workflow of LINES lines (actions, loops, calls, a workflow), then
sends one incremental edit that toggles a typo on a line near the middle (so the
diagnostics alternate between one error and none) and waits for the diagnostics of that
version. Only the time between writing the didChange and reading the publishDiagnostics
is counted.
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AETHER = os.environ.get("AETHER", os.path.join(ROOT, "target/release/aether"))
RUNS = int(os.environ.get("RUNS", "30"))


def generate(lines):
    out = ['goal: "latency benchmark"', "metadata:", '    requires: ["memory"]', ""]
    i = 0
    while len(out) < lines - 8:
        out += [
            f"action step{i}(items, factor = 2):",
            "    let total = 0",
            "    for x in items:",
            "        if x > factor:",
            "            total = total + x * factor",
            "    return total",
            f"let r{i} = step{i}([1, 2, 3], factor=3)",
            f'print(format("{{}}", r{i}))',
        ]
        i += 1
    out += ["workflow nightly:", "    steps:", "        - step0([1]) as first", "        - step1([first])"]
    return "\n".join(out) + "\n", i


class Server:
    def __init__(self):
        self.p = subprocess.Popen([AETHER, "lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, cwd=ROOT)
        self.next_id = 0

    def send(self, msg):
        body = json.dumps(msg).encode()
        self.p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.p.stdin.flush()

    def recv(self):
        length = None
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise SystemExit("the server closed its output")
            line = line.strip()
            if not line:
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.p.stdout.read(length))

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            msg = self.recv()
            if msg.get("id") == self.next_id and "method" not in msg:
                return msg

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def diagnostics(self, version):
        while True:
            msg = self.recv()
            if msg.get("method") == "textDocument/publishDiagnostics" and msg["params"].get("version") == version:
                return msg["params"]["diagnostics"]

    def close(self):
        self.request("shutdown", None)
        self.notify("exit", None)
        self.p.wait(10)


def measure(lines):
    text, n_actions = generate(lines)
    uri = "file:///bench/latency.aether"
    s = Server()
    s.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    s.notify("initialized", {})
    s.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "aether", "version": 1, "text": text}})
    first = s.diagnostics(1)
    assert first == [], first
    # The call line of the middle action: `let rK = stepK(...)`; toggle `step` <-> `stwp`.
    target = f"let r{n_actions // 2} = step"
    line_no = text.split("\n").index(next(l for l in text.split("\n") if l.startswith(target)))
    col = len(target) - 2
    times = []
    for run in range(RUNS):
        version = run + 2
        letter = "w" if run % 2 == 0 else "e"
        change = {"range": {"start": {"line": line_no, "character": col}, "end": {"line": line_no, "character": col + 1}}, "text": letter}
        start = time.perf_counter()
        s.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]})
        diags = s.diagnostics(version)
        times.append((time.perf_counter() - start) * 1000)
        assert len(diags) == (1 if letter == "w" else 0), diags
    s.close()
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(f"{lines:>6} lines ({len(text) / 1024:.0f} KiB): didChange -> publishDiagnostics "
          f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, min {times[0]:.1f} ms ({RUNS} edits)")


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [2000, 20000]
    for n in sizes:
        measure(n)
