#!/usr/bin/env python3
"""Generate a deterministic corpus of realistic `.aether` scripts for benchmarks.

Usage: python3 bench/gen_corpus.py OUT_DIR --files N [--seed S]

Every file is meant to check clean against docs/language.md: a goal, a
metadata block requiring "memory", a policy block, 2-5 actions (both
parameter forms) and a top-level main body. Variables are always declared
(`let` or `x: e`) before use in a scope that encloses the use; loop variables
are only used inside their loop body; only functions from STDLIB.md's global
list and memory.store / memory.recall / memory.count are called; actions only
call actions defined earlier in the same file (no recursion). Values are kept
type-correct (no str + int, no division by zero, small loops) so the corpus
also runs within `max_steps: 100000`.

The same (N, seed) always produces byte-identical files. Python stdlib only.
"""

import argparse
import os
import random
import sys

IND = "    "

DOMAINS = [
    ("ingest", "Ingest nightly batches and record what was processed"),
    ("queue", "Watch queue depth and report backlog levels"),
    ("rotate", "Rotate logs and summarise disk usage"),
    ("deploy", "Roll out a canary release and compare health"),
    ("billing", "Reconcile billing events against the ledger"),
    ("backup", "Verify backup snapshots and prune old ones"),
    ("metrics", "Aggregate service metrics into an hourly report"),
    ("audit", "Audit capability grants and flag drift"),
    ("sync", "Synchronise inventory records between regions"),
    ("triage", "Triage failing workflows by error category"),
    ("cache", "Warm caches for the busiest endpoints"),
    ("digest", "Build the daily incident digest"),
]

VERBS = ["collect", "score", "check", "summarise", "plan", "measure", "merge",
         "scan", "rank", "prepare", "validate", "estimate", "build", "track"]
NOUNS = ["batch", "window", "backlog", "shards", "records", "usage", "health",
         "budget", "latency", "errors", "segments", "snapshot", "quota", "load"]
PARAMS = [("batch_size", "factor"), ("depth", "weight"), ("count_in", "step"),
          ("width", "margin"), ("items_in", "scale"), ("level", "bias"),
          ("rounds", "stride"), ("total_in", "spread")]
WORDS = ["alpha", "beta", "gamma", "delta", "eu-west", "us-east", "primary",
         "replica", "cold", "warm", "ledger", "edge", "core", "archive"]
TAGS = ["batch", "report", "health", "audit", "queue", "ops", "nightly"]
EVENTS = ["batch_done", "threshold_crossed", "report_ready", "stage_finished",
          "drift_detected", "window_closed", "quota_checked"]
AUTHORS = ["ops", "platform", "sre", "data-eng", "release"]


class Ctx:
    """Per-file state: fresh-name counter, rng, and the actions defined so far."""

    def __init__(self, rng):
        self.rng = rng
        self.n = 0
        self.actions = []  # (name, n_required, has_default)

    def fresh(self, base):
        self.n += 1
        return f"{base}_{self.n}"


def ind(level, text):
    return IND * level + text


# Each snippet builder takes (ctx, level, a, b) where `a` and `b` are int-valued
# names visible at `level` (a >= 0, b >= 1), and returns (lines, exports):
# exports are (name, kind) pairs declared at `level` and usable afterwards.


def s_arith(c, lv, a, b):
    t, r = c.fresh("total"), c.fresh("ratio")
    k = c.rng.randint(2, 9)
    return [
        ind(lv, f"let {t} = {a} * {k} + {b} - 1"),
        ind(lv, f"let {r} = {t} / ({b} + 1)   // `/` always gives a float"),
    ], [(t, "int"), (r, "float")]


def s_if(c, lv, a, b):
    v = c.fresh("level")
    hi, mid = c.rng.randint(20, 60), c.rng.randint(3, 12)
    return [
        ind(lv, f'let {v} = "low"'),
        ind(lv, f"if {a} > {hi}:"),
        ind(lv + 1, f'{v} = "high"'),
        ind(lv, f"elif {a} > {mid} and {b} >= 1:"),
        ind(lv + 1, f'{v} = "medium"'),
        ind(lv, "else:"),
        ind(lv + 1, f'log("level stays low for " + str({a}))'),
    ], [(v, "str")]


def s_for_range(c, lv, a, b):
    acc, i = c.fresh("acc"), c.fresh("i")
    n = c.rng.randint(3, 12)
    return [
        ind(lv, f"let {acc} = 0"),
        ind(lv, f"for {i} in range({n}):   # the loop variable lives in the body"),
        ind(lv + 1, f"{acc} = {acc} + {i} * {b}"),
        ind(lv + 1, f"if {i} % 4 == 3:"),
        ind(lv + 2, f"{acc} = {acc} - 1"),
    ], [(acc, "int")]


def s_for_list(c, lv, a, b):
    names, joined, nm = c.fresh("names"), c.fresh("joined"), c.fresh("name")
    words = c.rng.sample(WORDS, c.rng.randint(2, 4))
    lit = ", ".join(f'"{w}"' for w in words)
    return [
        ind(lv, f"let {names} = [{lit}]"),
        ind(lv, f'let {joined} = ""'),
        ind(lv, f"for {nm} in {names}:"),
        ind(lv + 1, f'{joined} = {joined} + upper({nm}) + ";"'),
    ], [(names, "list_str"), (joined, "str")]


def s_while(c, lv, a, b):
    k, ev = c.fresh("k"), c.fresh("evens")
    lim = c.rng.randint(8, 30)
    stop = c.rng.randint(2, 5)
    return [
        ind(lv, f"let {k} = 0"),
        ind(lv, f"let {ev} = 0"),
        ind(lv, f"while {k} < {lim}:"),
        ind(lv + 1, f"{k} = {k} + 1"),
        ind(lv + 1, f"if {k} % 2 == 1:"),
        ind(lv + 2, "continue"),
        ind(lv + 1, f"{ev} = {ev} + 1"),
        ind(lv + 1, f"if {ev} >= {stop}:"),
        ind(lv + 2, "break"),
    ], [(k, "int"), (ev, "int")]


def s_while_true(c, lv, a, b):
    n = c.fresh("attempts")
    lim = c.rng.randint(3, 7)
    return [
        ind(lv, f"{n}: 0                    # 1.1 form: declares"),
        ind(lv, "while true:"),
        ind(lv + 1, f"{n}: {n} + 1       # visible, so this assigns"),
        ind(lv + 1, f"if {n} >= {lim} || {n} > {a} + {lim}:"),
        ind(lv + 2, "break"),
    ], [(n, "int")]


def s_format(c, lv, a, b):
    m = c.fresh("msg")
    tmpl = c.rng.choice(["{} of {} done", "step {} of {}", "{} items, weight {}",
                         "window {} / {}"])
    return [
        ind(lv, f'let {m} = format("{tmpl}", {a}, {b})'),
        ind(lv, f"log({m})"),
    ], [(m, "str")]


def s_map_emit(c, lv, a, b):
    r = c.fresh("report")
    stage = c.rng.choice(["fetch", "parse", "store", "verify", "publish"])
    ev = c.rng.choice(EVENTS)
    return [
        ind(lv, f"let {r} = {{"),
        ind(lv + 1, f'stage: "{stage}",'),
        ind(lv + 1, f"count: {a},"),
        ind(lv + 1, f"ok: {a} >= 0,"),
        ind(lv + 1, f'"retry budget": {b} * 2,'),
        ind(lv, "}"),
        ind(lv, f'emit "{ev}" {{stage: {r}.stage, count: {r}.count}}'),
    ], [(r, "map")]


def s_memory(c, lv, a, b):
    i, rec, cnt = c.fresh("note_id"), c.fresh("recent"), c.fresh("stored")
    tag = c.rng.choice(TAGS)
    return [
        ind(lv, f'let {i} = memory.store("processed " + str({a}) + " items", tags=["{tag}"])'),
        ind(lv, f'let {rec} = memory.recall("processed", limit={c.rng.randint(2, 5)})'),
        ind(lv, f'{cnt}: memory.count(tags=["{tag}"])'),
        ind(lv, f'log("memory holds " + str({cnt}) + " {tag} notes, recalled " + str(len({rec})))'),
    ], [(cnt, "int")]


def s_duration(c, lv, a, b):
    w, bud = c.fresh("base_wait"), c.fresh("budget")
    d1 = c.rng.choice(["150ms", "250ms", "1.5s", "2s", "500ms"])
    d2 = c.rng.choice(["2s", "30s", "1m", "5m", "90s"])
    return [
        ind(lv, f"let {w} = {d1}"),
        ind(lv, f"let {bud} = {w} * {c.rng.randint(2, 6)} + {d2}"),
        ind(lv, f'log("wait budget is " + str({bud}))'),
    ], [(bud, "duration")]


def s_listfns(c, lv, a, b):
    v, o, p, lo, t, st = (c.fresh(x) for x in ("samples", "ordered", "peak", "low", "sum", "stats"))
    nums = ", ".join(str(c.rng.randint(1, 99)) for _ in range(c.rng.randint(2, 4)))
    return [
        ind(lv, f"let {v} = [{a}, {b}, {nums}]"),
        ind(lv, f"{v} = append({v}, {a} % {c.rng.randint(2, 7)})"),
        ind(lv, f"let {o} = sorted({v}, reverse=true)"),
        ind(lv, f"let {p} = max({o})"),
        ind(lv, f"let {lo} = min({v})"),
        ind(lv, f"let {t} = sum({v}) + abs({lo} - {p})"),
        ind(lv, f"let {st} = summarize({v})"),
        ind(lv, f'log("mean " + str({st}.mean) + ", peak " + str({p}))'),
    ], [(v, "list_int"), (t, "int")]


def s_strings(c, lv, a, b):
    raw, parts, lab = c.fresh("raw"), c.fresh("parts"), c.fresh("label")
    ws = c.rng.sample(WORDS, 3)
    first = ws[0]
    return [
        ind(lv, f'let {raw} = "  {",".join(w.capitalize() for w in ws)}  "'),
        ind(lv, f'let {parts} = split(trim({raw}), ",")'),
        ind(lv, f'let {lab} = join({parts}, "-")'),
        ind(lv, f'if startswith(lower({lab}), "{first}") && endswith({lab}, "{ws[2].capitalize()}"):'),
        ind(lv + 1, f'log("label ok:\\t" + {lab})'),
        ind(lv, f'elif contains({parts}, "{ws[1].capitalize()}") and not ({a} < 0):'),
        ind(lv + 1, f"log('label has the middle part')"),
    ], [(lab, "str"), (parts, "list_str")]


def s_json(c, lv, a, b):
    e, d, n = c.fresh("encoded"), c.fresh("decoded"), c.fresh("tag_count")
    return [
        ind(lv, f'let {e} = json_encode({{id: {a}, tags: ["x", "y"], ok: true}})'),
        ind(lv, f"let {d} = json_decode({e})"),
        ind(lv, f'let {n} = len(get({d}, "tags", []))'),
    ], [(e, "str"), (n, "int")]


def s_limits(c, lv, a, b):
    m, k, hi = c.fresh("limits"), c.fresh("key"), c.fresh("high")
    return [
        ind(lv, f"let {m} = {{cpu: {c.rng.randint(60, 95)}, mem_mb: 512, disk: {c.rng.randint(70, 99)}}}"),
        ind(lv, f"let {hi} = []"),
        ind(lv, f"for {k} in keys({m}):"),
        ind(lv + 1, f"if get({m}, {k}, 0) > 85:"),
        ind(lv + 2, f"{hi} = append({hi}, {k})"),
        ind(lv, f"if contains(values({m}), 512) and len({hi}) > 0:"),
        ind(lv + 1, f'log("limits above 85: " + join({hi}, ", "), level="info")'),
    ], [(m, "map"), (hi, "list_str")]


def s_counts(c, lv, a, b):
    m = c.fresh("counts")
    return [
        ind(lv, f"let {m} = {{ok: 0, failed: 0}}"),
        ind(lv, f'{m}["ok"] = {m}["ok"] + {a}'),
        ind(lv, f"{m}.failed = {m}.failed + {b} % 2"),
    ], [(m, "map")]


def s_bool(c, lv, a, b):
    r = c.fresh("ready")
    return [
        ind(lv, f"let {r} = {a} >= 0 && !({b} > {c.rng.randint(100, 500)})"),
        ind(lv, f"if {r} || {a} == 0:"),
        ind(lv + 1, f'log("ready: " + str({r}))'),
    ], [(r, "bool")]


def s_numbers(c, lv, a, b):
    mean, delta, whole, cap = (c.fresh(x) for x in ("mean", "delta", "whole", "cap"))
    return [
        ind(lv, f"let {cap} = {c.rng.choice(['50_000', '1_000', '250_000', '10_000'])}"),
        ind(lv, f"let {mean} = round(float({a}) / {c.rng.randint(2, 9)}, 2)"),
        ind(lv, f"let {delta} = abs({b} - {a})"),
        ind(lv, f"let {whole} = int({mean}) + {delta}"),
        ind(lv, f"if {whole} > {cap}:"),
        ind(lv + 1, f"{whole} = {cap}"),
        ind(lv, f'log("kind of mean: " + str(type({mean})) + ", ok=" + str(bool({whole})))'),
    ], [(whole, "int"), (mean, "float")]


def s_stages(c, lv, a, b):
    st, done, s = c.fresh("stages"), c.fresh("done"), c.fresh("stage")
    ws = c.rng.sample(["fetch", "parse", "enrich", "store", "verify", "publish", "notify"], 4)
    lines = [ind(lv, f"let {st} = [")]
    lines += [ind(lv + 1, f'"{w}",') for w in ws]
    lines += [
        ind(lv, "]"),
        ind(lv, f"let {done} = concat([], [{st}[0]])"),
        ind(lv, f"for {s} in {st}:"),
        ind(lv + 1, f"if {s} in {done}:"),
        ind(lv + 2, "continue"),
        ind(lv + 1, f"{done} = {done} + [{s}]"),
    ]
    return lines, [(st, "list_str"), (done, "list_str")]


def s_escape(c, lv, a, b):
    h = c.fresh("header")
    return [
        ind(lv, f"let {h} = " + '"run \\"" + str(' + a + ') + \'\\"\' + "\\n" + \'col\\ta\\tb\''),
        ind(lv, f"log(trim({h}))"),
    ], [(h, "str")]


SNIPPETS = [s_arith, s_if, s_for_range, s_for_list, s_while, s_while_true,
            s_format, s_map_emit, s_memory, s_duration, s_listfns, s_strings,
            s_json, s_limits, s_counts, s_bool, s_numbers, s_stages, s_escape]

COMMENTS = [
    "// keep this cheap: it runs on every batch",
    "# thresholds come from the last incident review",
    "// TODO(ops): move the limits into policy once supported",
    "# values are illustrative; tune per environment",
    "// collect first, decide later",
    "# see the runbook section on backlog handling",
]


SMALL_SNIPPETS = [s_arith, s_format, s_bool, s_counts]


def call_expr(c, a, b):
    """A call of an action defined earlier in the file, with int arguments, or None."""
    if not c.actions:
        return None
    name, second = c.rng.choice(c.actions)
    form = c.rng.randint(0, 2)
    if form == 0:
        return f"{name}({a})"
    if form == 1:
        return f"{name}({a} + 1, {b})"
    return f"{name}({a}, {second}={c.rng.randint(1, 4)})"


def size_of(lines):
    return sum(len(x) + 1 for x in lines)


def gen_action(c, name, budget):
    """One action whose body is roughly `budget` bytes (at least one snippet)."""
    pa, pb = c.rng.choice(PARAMS)
    lines = []
    if c.rng.random() < 0.3:
        lines.append(c.rng.choice(COMMENTS))
    if c.rng.random() < 0.5:
        lines.append(f"action {name}({pa}, {pb} = 1):")
    else:
        lines.append(f"action {name}:")
        lines.append(ind(1, f"inputs: [{pa}, {pb} = {c.rng.randint(1, 3)}]"))
    exports = []
    body = 0
    misses = 0
    while misses < 4:
        pool = SNIPPETS if body or budget > 250 else SMALL_SNIPPETS
        snip = c.rng.choice(pool)
        saved = c.n
        nested = c.rng.random() < 0.2
        if nested:
            # the snippet's names stay inside the if block
            sl, ex = snip(c, 2, pa, pb)
            block = [ind(1, f"if {pa} >= {c.rng.randint(0, 3)}:")] + sl
            ex = []
        else:
            block, ex = snip(c, 1, pa, pb)
        if c.rng.random() < 0.15:
            block.insert(0, ind(1, c.rng.choice(COMMENTS)))
        n = size_of(block)
        if body and body + n > budget * 1.1:
            c.n = saved
            misses += 1
            continue
        lines += block
        exports += ex
        body += n
    call = call_expr(c, pa, pb) if budget > 300 or c.rng.random() < 0.3 else None
    if call is not None:
        sub = c.fresh("sub")
        lines.append(ind(1, f"let {sub} = {call}"))
        lines.append(ind(1, f'log("{name}: nested result " + str({sub}))'))
        exports.append((sub, "any"))
    # return something built from the names declared at the body's top level
    if exports and c.rng.random() < 0.6:
        picks = c.rng.sample(exports, min(len(exports), c.rng.randint(1, 3)))
        fields = ", ".join(f"{p}: {p}" for p, _ in picks)
        lines.append(ind(1, f'return {{action: "{name}", {fields}}}'))
    elif exports:
        lines.append(ind(1, f"return {c.rng.choice(exports)[0]}"))
    else:
        lines.append(ind(1, f"return {pa} + {pb}"))
    c.actions.append((name, pb))
    return lines


def gen_main(rng, script, names, target):
    """The top-level main body: call every action, collect and print."""
    big = target > 1200
    if target < 700:
        # tiny scripts: just print each action's result
        return [f"print({nm}({rng.randint(1, 40)}))" for nm in names]
    lines = [rng.choice(["# main", "// main body", "# entry point"])]
    lines.append(f'let run_label = "{script}"')
    lines.append("results: []")
    for i, nm in enumerate(names):
        arg = rng.randint(1, 40)
        var = f"out_{i}"
        if rng.random() < 0.5:
            lines.append(f"let {var} = {nm}({arg})")
        else:
            lines.append(f"{var}: {nm}({arg}, {rng.randint(1, 3)})")
        lines.append(f"results = append(results, {var})")
        if big and rng.random() < 0.5:
            lines.append(f'print("{nm}:", {var})')
    if big:
        lines.append("let loop_rounds = 0")
        lines.append(f"for r in range({rng.randint(2, 5)}):")
        lines.append(ind(1, "loop_rounds = loop_rounds + r + 1"))
        lines.append('memory.store(run_label + " finished", tags=["run"])')
        lines.append('emit "run_finished" {script: run_label, actions: len(results)}')
        lines.append('print(run_label + ": " + str(loop_rounds) + " rounds, "'
                     ' + str(memory.count(tags=["run"])) + " runs stored")')
    lines.append(f'print(format("{{}} of {{}} actions done", len(results), {len(names)}))')
    return lines


def gen_file(idx, seed):
    rng = random.Random(seed * 1_000_003 + idx)
    c = Ctx(rng)
    domain, goal = rng.choice(DOMAINS)
    script = f"{domain}_{idx:05d}"
    # target size: triangular(450, 4000, mode 1000), mean ~1.8 KB
    target = rng.triangular(450, 4000, 1000)
    n_actions = max(2, min(5, int(target / 800) + rng.randint(0, 1)))
    lines = [f"// {script}.aether: {goal.lower()}"] if target >= 700 else []
    lines += [
        f'goal: "{goal}"',
        "",
        "metadata:",
        ind(1, f'name: "{script.replace("_", "-")}"'),
        ind(1, f'version: "{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"'),
    ]
    if target > 1000:
        lines.append(ind(1, f'author: "{rng.choice(AUTHORS)}"'))
    lines += [
        ind(1, 'requires: ["memory"]'),
        "",
        "policy:",
        ind(1, "timeout: 30s"),
        ind(1, "max_steps: 100000"),
    ]
    names = []
    while len(names) < n_actions:
        nm = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"
        if nm not in names:
            names.append(nm)
    main_lines = gen_main(rng, script, names, target)
    # what is left for action bodies, after headers, main and per-action overhead
    left = target - size_of(lines) - size_of(main_lines) - n_actions * 110
    per_action = max(0.0, left / n_actions)
    for nm in names:
        lines.append("")
        lines += gen_action(c, nm, per_action * rng.uniform(0.6, 1.4))
    lines.append("")
    lines += main_lines
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--files", type=int, required=True, help="number of files to write")
    ap.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    args = ap.parse_args(argv)
    if args.files < 0:
        ap.error("--files must be >= 0")
    os.makedirs(args.out_dir, exist_ok=True)
    total = 0
    width = max(4, len(str(args.files)))
    for i in range(args.files):
        text = gen_file(i, args.seed)
        data = text.encode("utf-8")
        path = os.path.join(args.out_dir, f"w{i:0{width}d}.aether")
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
    avg = total / args.files if args.files else 0
    print(f"wrote {args.files} files, {total} bytes ({total / 1e6:.2f} MB, avg {avg:.0f} B) to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
