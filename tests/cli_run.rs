//! End-to-end tests of `aether run`: what each statement prints, the display rules, workflows,
//! retries, timeouts, capabilities, `on_error`, transactions, the event stream, and for every
//! error class the exit code, the `--json-status` line and the `--emit-error-code` line.
//!
//! Every script is written to `t.aether` in a fresh temporary directory and run from there, so
//! positions read `t.aether:LINE:COL` and nothing is left in the repository. Line numbers in
//! the assertions are those of the raw string literals, which start on line 1.

use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::{json, Map, Value};
use tempfile::TempDir;

/// docs/contract/LANGUAGE.md section 7: the keys of a status line, in this order.
const STATUS_KEYS: [&str; 8] = [
    "ok",
    "code",
    "code_name",
    "file",
    "phase",
    "message",
    "line",
    "timestamp",
];

/// The keys every event record starts with, in this order.
const EVENT_KEYS: [&str; 4] = ["seq", "time", "kind", "line"];

/// The script's file name inside its temporary directory.
const FILE: &str = "t.aether";
/// The events file name inside the temporary directory.
const EVENTS: &str = "events.jsonl";

/// Environment variables that change how a run behaves; a test sets the ones it wants.
const AMBIENT_ENV: [&str; 8] = [
    "AETHERRA_PROFILE",
    "AETHERRA_QUIET",
    "AETHERRA_REQUIRE_CAPABILITIES",
    "AETHERRA_SCRIPT_VERIFY_STRICT",
    "AETHERRA_SIGNING_STRICT",
    "AETHERRA_PROD_UNSAFE_ALLOW",
    "AETHER_SIGNING_KEY",
    "AETHER_PLUGIN_PATH",
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// A script in its own temporary directory.
struct Script {
    dir: TempDir,
}

fn aether(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("aether").expect("the aether binary is built");
    cmd.current_dir(dir).env("NO_COLOR", "1");
    for var in AMBIENT_ENV {
        cmd.env_remove(var);
    }
    cmd
}

fn finish(mut cmd: Command) -> Run {
    let started = Instant::now();
    let out = cmd.output().expect("aether starts");
    let elapsed = started.elapsed();
    Run {
        code: out
            .status
            .code()
            .expect("aether exits by itself, not by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        elapsed,
    }
}

impl Script {
    fn new(src: &str) -> Script {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), src).expect("write the script");
        Script { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `aether run t.aether ARGS...`
    fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = aether(self.path());
        cmd.arg("run").arg(FILE).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        finish(cmd)
    }

    /// The raw lines of the events file.
    fn event_lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path().join(EVENTS)).expect("the events file");
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "events end with a newline"
        );
        text.lines().map(str::to_string).collect()
    }

    /// Every event, checked for the common shape: keys `seq time kind line` first, `seq`
    /// counting from 1, `time` RFC 3339 UTC, a `run started` first and a `run` result last.
    fn events(&self) -> Vec<Map<String, Value>> {
        let all: Vec<Map<String, Value>> = self.event_lines().iter().map(|l| object(l)).collect();
        assert!(all.len() >= 2, "at least the two run records: {all:?}");
        for (i, e) in all.iter().enumerate() {
            let first: Vec<&str> = e.keys().take(4).map(String::as_str).collect();
            assert_eq!(first, EVENT_KEYS, "{e:?}");
            assert_eq!(e["seq"], json!(i + 1), "seq counts from 1: {e:?}");
            assert_rfc3339_utc(e["time"].as_str().expect("time is a string"));
            assert!(e["line"].is_null() || e["line"].is_u64(), "{e:?}");
        }
        let first = &all[0];
        assert_eq!(first["kind"], "run");
        assert_eq!(first["status"], "started");
        assert_eq!(first["file"], FILE);
        let last = all.last().expect("a last event");
        assert_eq!(last["kind"], "run");
        all
    }
}

fn object(line: &str) -> Map<String, Value> {
    match serde_json::from_str(line) {
        Ok(Value::Object(m)) => m,
        other => panic!("not a JSON object: {line:?} ({other:?})"),
    }
}

/// An RFC 3339 UTC timestamp: `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
fn assert_rfc3339_utc(ts: &str) {
    assert!(ts.ends_with('Z'), "timestamp is not UTC (`Z`): {ts}");
    chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {ts}"));
}

/// Split stdout into the program's output and the status line, which must be the last line.
fn split_status(stdout: &str) -> (String, Map<String, Value>) {
    assert!(
        stdout.ends_with('\n'),
        "stdout ends with a newline: {stdout:?}"
    );
    let body = &stdout[..stdout.len() - 1];
    let (output, last) = match body.rfind('\n') {
        Some(i) => (&stdout[..=i], &body[i + 1..]),
        None => ("", body),
    };
    let status = object(last);
    let keys: Vec<&str> = status.keys().map(String::as_str).collect();
    assert_eq!(keys, STATUS_KEYS, "status line keys: {last}");
    assert_rfc3339_utc(status["timestamp"].as_str().expect("timestamp"));
    assert_eq!(status["file"], FILE);
    (output.to_string(), status)
}

/// The last line of stderr must be `AETHER_ERROR_CODE:<code>`.
fn assert_error_code_line(stderr: &str, code: i32) {
    let last = stderr.lines().last().unwrap_or("");
    assert_eq!(
        last,
        format!("AETHER_ERROR_CODE:{code}"),
        "stderr:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("AETHER_ERROR_CODE:").count(),
        1,
        "one error-code line:\n{stderr}"
    );
}

fn code_name(code: i32) -> &'static str {
    match code {
        0 => "SUCCESS",
        20 => "PARSE_ERROR",
        21 => "RUNTIME_ERROR",
        23 => "TIMEOUT_ERROR",
        24 => "UNSUPPORTED_FEATURE",
        25 => "VALIDATION_ERROR",
        26 => "IO_ERROR",
        other => panic!("no name for {other} in these tests"),
    }
}

/// A finished run, its output split from its status line.
struct Outcome {
    output: String,
    status: Map<String, Value>,
    stderr: String,
    elapsed: Duration,
}

/// Run with `--json-status --emit-error-code` (and `extra`), check the exit code, the status
/// line (last on stdout) and the error-code line (last on stderr).
fn run_expect(script: &Script, extra: &[&str], code: i32) -> Outcome {
    let mut args = vec!["--json-status", "--emit-error-code"];
    args.extend_from_slice(extra);
    let res = script.run(&args);
    assert_eq!(
        res.code, code,
        "exit code\nstdout:\n{}\nstderr:\n{}",
        res.stdout, res.stderr
    );
    let (output, status) = split_status(&res.stdout);
    assert_eq!(status["ok"], code == 0, "{status:?}");
    assert_eq!(status["code"], code, "{status:?}");
    assert_eq!(status["code_name"], code_name(code), "{status:?}");
    assert_error_code_line(&res.stderr, code);
    Outcome {
        output,
        status,
        stderr: res.stderr,
        elapsed: res.elapsed,
    }
}

/// A run that must succeed: returns the program's stdout (without the status line).
fn run_ok(src: &str) -> String {
    run_ok_with(&Script::new(src), &[]).output
}

fn run_ok_with(script: &Script, extra: &[&str]) -> Outcome {
    let o = run_expect(script, extra, 0);
    assert_eq!(o.status["phase"], "execute");
    assert_eq!(o.status["message"], "");
    assert_eq!(o.status["line"], Value::Null);
    o
}

/// A run that fails while executing with `code` at `line` with exactly `message`.
fn run_fails(src: &str, extra: &[&str], code: i32, line: u64, message: &str) -> Outcome {
    let o = run_fails_somewhere(src, extra, code, message);
    assert_eq!(
        o.status["line"], line,
        "{:?}\nstderr:\n{}",
        o.status, o.stderr
    );
    o
}

/// Like `run_fails`, for budgets that run out in a busy loop: the line is only required to be
/// there (which line of the loop it is depends on where the budget ran out; see the ignored
/// `max_steps_error_points_into_the_loop_whatever_the_budget`).
fn run_fails_somewhere(src: &str, extra: &[&str], code: i32, message: &str) -> Outcome {
    let script = Script::new(src);
    let o = run_expect(&script, extra, code);
    assert_eq!(o.status["phase"], "execute", "{:?}", o.status);
    assert!(o.status["line"].is_u64(), "{:?}", o.status);
    assert_eq!(o.status["message"], message, "{:?}", o.status);
    let header = format!("error[{}]: {message}", code_name(code));
    assert!(
        o.stderr.lines().any(|l| l == header),
        "stderr has `{header}`:\n{}",
        o.stderr
    );
    o
}

/// The `--> file:line:col` line of a rendered runtime error.
fn arrow(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("--> "))
        .unwrap_or_else(|| panic!("no `-->` line in:\n{stderr}"))
        .to_string()
}

fn step_events(events: &[Map<String, Value>]) -> Vec<&Map<String, Value>> {
    events.iter().filter(|e| e["kind"] == "step").collect()
}

fn of_kind<'a>(events: &'a [Map<String, Value>], kind: &str) -> Vec<&'a Map<String, Value>> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// `(kind, extra fields)` of each event, to compare whole streams without `seq` and `time`.
fn shapes(events: &[Map<String, Value>]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut m = e.clone();
            m.remove("seq");
            m.remove("time");
            Value::Object(m)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Statements

#[test]
fn the_smallest_int_is_a_literal_and_negating_it_overflows() {
    let out = run_ok(
        r#"goal: "i64 min"
let m = -9223372036854775808
print(m, m + 1)
"#,
    );
    assert_eq!(out, "-9223372036854775808 -9223372036854775807\n");
    run_fails(
        "goal: \"i64 min\"\nlet m = -9223372036854775808\nprint(-m)\n",
        &[],
        21,
        3,
        "integer overflow in -(-9223372036854775808)",
    );
}

#[test]
fn let_declares_a_variable() {
    let out = run_ok(
        r#"goal: "let"
let x = 1
let name: str = "ada"
let xs = [x, x + 1]
print(x, name, xs)
"#,
    );
    assert_eq!(out, "1 ada [1, 2]\n");
}

#[test]
fn colon_form_declares_then_reassigns() {
    let out = run_ok(
        r#"goal: "1.1 assignment"
count: 1
count: count + 1
label: str = "a"
label: label + "b"
print(count, label)
action bump():
    count: 100
    count: count + 1
    return count
print(bump(), count)
if true:
    fresh: "inner"
    count: count * 10
    print(fresh)
print(count)
"#,
    );
    // `count: 100` in an action declares a local (actions cannot assign top-level
    // variables); inside `if` at top level, `count: ...` assigns the visible top-level one.
    assert_eq!(out, "2 ab\n101 2\ninner\n20\n");
}

#[test]
fn index_and_field_assignment_rebind_a_copy() {
    let out = run_ok(
        r#"goal: "value semantics"
let xs = [1, 2, 3]
let before = xs
xs[0] = 9
print(xs, before)
let m = {a: 1, b: 2}
let snap = m
m["a"] = 10
m.b = 20
m.c = "new"
print(m)
print(snap)
let cfg = {db: {host: "a", port: 1}}
let old = cfg
cfg.db.port = 2
cfg["db"]["host"] = "b"
print(cfg, old)
action edit(d):
    d.k = "changed"
    return d
let orig = {k: "v"}
let res = edit(orig)
print(orig, res)
let total = 1
total = total + 41
print(total)
"#,
    );
    assert_eq!(
        out,
        concat!(
            "[9, 2, 3] [1, 2, 3]\n",
            "{\"a\": 10, \"b\": 20, \"c\": \"new\"}\n",
            "{\"a\": 1, \"b\": 2}\n",
            "{\"db\": {\"host\": \"b\", \"port\": 2}} {\"db\": {\"host\": \"a\", \"port\": 1}}\n",
            "{\"k\": \"v\"} {\"k\": \"changed\"}\n",
            "42\n",
        )
    );
}

#[test]
fn if_elif_else_takes_exactly_one_branch() {
    let out = run_ok(
        r#"goal: "branches"
action classify(n):
    if n < 0:
        return "negative"
    elif n == 0:
        return "zero"
    elif n < 10:
        return "small"
    else:
        return "large"
for n in [-3, 0, 7, 12]:
    print(n, classify(n))
if 0:
    print("0 is truthy?")
elif "":
    print("empty string is truthy?")
else:
    print("falsy values skip their branches")
if [0]:
    print("a non-empty list is truthy")
"#,
    );
    assert_eq!(
        out,
        "-3 negative\n0 zero\n7 small\n12 large\nfalsy values skip their branches\na non-empty list is truthy\n"
    );
}

#[test]
fn for_iterates_lists_map_keys_string_chars_and_ranges() {
    let out = run_ok(
        r#"goal: "for"
for x in [1, "two", null]:
    print("item", x)
for k in {zeta: 1, alpha: 2}:
    print("key", k)
for ch in "hé!":
    print("char", ch)
for i in range(3):
    print("range", i)
for i in range(10, 0, step=-4):
    print("step", i)
for nothing in []:
    print("never")
"#,
    );
    assert_eq!(
        out,
        concat!(
            "item 1\nitem two\nitem null\n",
            "key zeta\nkey alpha\n",
            "char h\nchar é\nchar !\n",
            "range 0\nrange 1\nrange 2\n",
            "step 10\nstep 6\nstep 2\n",
        )
    );
}

#[test]
fn while_break_and_continue() {
    let out = run_ok(
        r#"goal: "while"
let i = 0
while i < 10:
    i = i + 1
    if i % 2 == 0:
        continue
    if i > 7:
        break
    print("odd", i)
print("stopped at", i)
for a in range(3):
    for b in range(3):
        if b == 1:
            continue
        if a == 2:
            break
        print(a, b)
let n = 3
while n:
    n = n - 1
print("n", n)
"#,
    );
    assert_eq!(
        out,
        "odd 1\nodd 3\nodd 5\nodd 7\nstopped at 9\n0 0\n0 2\n1 0\n1 2\nn 0\n"
    );
}

#[test]
fn return_leaves_the_action_from_inside_loops() {
    let out = run_ok(
        r#"goal: "return"
action find(xs, want):
    for i in range(len(xs)):
        while true:
            if xs[i] == want:
                return i
            break
    return -1
action nothing():
    return
print(find(["a", "b", "c"], "b"), find(["a"], "z"), nothing())
"#,
    );
    assert_eq!(out, "1 -1 null\n");
}

#[test]
fn top_level_return_ends_the_script_and_skips_workflows() {
    let script = Script::new(
        r#"goal: "early exit"
action show(t):
    print(t)
for i in range(5):
    if i == 2:
        return i
    print(i)
print("after the loop")
workflow cleanup:
    steps:
        - show("workflow ran")
"#,
    );
    let o = run_ok_with(&script, &["--events", EVENTS]);
    assert_eq!(o.output, "0\n1\n");
    let events = script.events();
    assert!(of_kind(&events, "workflow").is_empty(), "{events:?}");
    assert_eq!(events.last().expect("last")["status"], "succeeded");
}

#[test]
fn assert_that_holds_does_nothing() {
    let out = run_ok(
        r#"goal: "assert"
assert 1 + 1 == 2
assert [1], "a non-empty list is truthy"
assert 1 == 1.0, "int and float compare numerically"
print("still here")
"#,
    );
    assert_eq!(out, "still here\n");
}

#[test]
fn emit_records_name_payload_and_line() {
    let script = Script::new(
        r#"goal: "emit"
emit "plain"
emit "with_payload" {n: 1, tags: ["a"]}
action note(x):
    emit "from_action" x
note(1500ms)
print("done")
"#,
    );
    let o = run_ok_with(&script, &["--events", EVENTS]);
    assert_eq!(o.output, "done\n", "emit prints nothing");
    let events = script.events();
    let emits: Vec<Value> = shapes(&events)
        .into_iter()
        .filter(|e| e["kind"] == "emit")
        .collect();
    assert_eq!(
        emits,
        vec![
            json!({"kind": "emit", "line": 2, "name": "plain", "payload": null}),
            json!({"kind": "emit", "line": 3, "name": "with_payload", "payload": {"n": 1, "tags": ["a"]}}),
            json!({"kind": "emit", "line": 5, "name": "from_action", "payload": "1.5s"}),
        ]
    );
    let emit = of_kind(&events, "emit")[0];
    let keys: Vec<&str> = emit.keys().map(String::as_str).collect();
    assert_eq!(keys, ["seq", "time", "kind", "line", "name", "payload"]);
    let last = events.last().expect("last");
    assert_eq!(
        shapes(std::slice::from_ref(last))[0],
        json!({"kind": "run", "line": null, "status": "succeeded", "code": 0, "code_name": "SUCCESS", "message": ""})
    );
}

#[test]
fn sleep_takes_a_number_of_seconds_or_a_duration() {
    let out = run_ok(
        r#"goal: "sleep"
let t0 = now()
sleep 0.1
let t1 = now()
sleep 100ms
let t2 = now()
sleep 0
print(t1 - t0 >= 0.1, t2 - t1 >= 0.1, t2 - t0 < 1)
"#,
    );
    assert_eq!(out, "true true true\n");
    // An int is seconds, not milliseconds: `sleep 1` outlives a 150ms budget.
    let o = run_fails(
        r#"goal: "sleep int"
sleep 1
print("never")
"#,
        &["--timeout", "150ms"],
        23,
        2,
        "the run's time budget of 150ms ran out (policy timeout or --timeout)",
    );
    assert_eq!(o.output, "");
}

#[test]
fn parallel_runs_right_sides_concurrently_and_await_gives_values() {
    let script = Script::new(
        r#"goal: "parallel"
action nap(n):
    sleep 200ms
    return n * 10
let t0 = now()
parallel:
    a: nap(1)
    let b = nap(2)
    c: nap(3)
print("started")
await a, b, c
print(a, b, c)
print(now() - t0 < 0.55)
"#,
    );
    let o = run_ok_with(&script, &[]);
    assert_eq!(o.output, "started\n10 20 30\ntrue\n");
    assert!(
        o.elapsed < Duration::from_millis(550),
        "three 200ms sleeps in parallel took {:?} (sequential would be 600ms)",
        o.elapsed
    );
    assert!(o.elapsed >= Duration::from_millis(200), "{:?}", o.elapsed);
}

#[test]
fn parallel_failure_surfaces_at_await() {
    let o = run_fails(
        r#"goal: "parallel failure"
action ok(n):
    sleep 20ms
    return n
action bad():
    sleep 10ms
    assert false, "worker failed"
parallel:
    a: ok(1)
    b: bad()
print("started")
await a
print("a", a)
await b
print("unreached")
"#,
        &[],
        21,
        7,
        "worker failed",
    );
    assert_eq!(o.output, "started\na 1\n");
    assert!(
        o.stderr.contains("  in `bad`, called at t.aether:10:8\n"),
        "{}",
        o.stderr
    );
}

#[test]
fn unawaited_parallel_failure_fails_the_run() {
    let o = run_fails(
        r#"goal: "structured concurrency"
action bad():
    assert false, "nobody waited"
parallel:
    b: bad()
print("main done")
"#,
        &[],
        21,
        3,
        "nobody waited",
    );
    assert_eq!(o.output, "main done\n");
}

#[test]
fn workflows_run_after_the_main_body_in_file_order() {
    let script = Script::new(
        r#"goal: "workflows"
action fetch(src):
    return {src: src, n: 3}
action double(d):
    return d.n * 2
action show(label, v):
    print(label, v)
print("main start")
workflow first:
    source: "db"
    steps:
        - fetch(workflow.source) as data
        - double(data) as doubled
        - show(workflow.source, doubled)
workflow second:
    steps:
        - show("second", 1)
print("main end")
"#,
    );
    let o = run_ok_with(&script, &["--events", EVENTS]);
    assert_eq!(o.output, "main start\nmain end\ndb 6\nsecond 1\n");
    let events = script.events();
    let workflows: Vec<Value> = of_kind(&events, "workflow")
        .iter()
        .map(|e| json!([e["workflow"], e["line"]]))
        .collect();
    assert_eq!(workflows, vec![json!(["first", 9]), json!(["second", 15])]);
}

#[test]
fn main_calling_a_workflow_runs_it_there_and_not_again() {
    let out = run_ok(
        r#"goal: "called workflow"
action show(t):
    print(t)
workflow a:
    steps:
        - show("a runs")
workflow b:
    steps:
        - show("b runs")
print("main")
b()
print("after b")
"#,
    );
    assert_eq!(out, "main\nb runs\nafter b\na runs\n");
}

#[test]
fn retry_records_every_attempt_and_then_fails() {
    let script = Script::new(
        r#"goal: "retry exhausted"
action flaky():
    assert false, "boom"
workflow w:
    steps:
        - flaky as r retry=2 backoff=10ms
"#,
    );
    let o = run_expect(&script, &["--events", EVENTS], 21);
    assert_eq!(o.output, "");
    assert_eq!(
        o.status["message"],
        "step `flaky` failed after 3 attempts: boom"
    );
    assert_eq!(o.status["line"], 3);
    let events = script.events();
    let steps: Vec<Value> = shapes(&events)
        .into_iter()
        .filter(|e| e["kind"] == "step")
        .collect();
    let step = |status: &str, attempt: u32| json!({"kind": "step", "line": 6, "step": "flaky", "status": status, "attempt": attempt});
    let mut retrying1 = step("retrying", 1);
    retrying1["error"] = json!("boom");
    retrying1["backoff"] = json!("10ms");
    let mut retrying2 = step("retrying", 2);
    retrying2["error"] = json!("boom");
    retrying2["backoff"] = json!("20ms");
    let mut failed = step("failed", 3);
    failed["error"] = json!("boom");
    assert_eq!(
        steps,
        vec![
            step("started", 1),
            retrying1,
            step("started", 2),
            retrying2,
            step("started", 3),
            failed,
        ]
    );
    let last = events.last().expect("last");
    assert_eq!(last["status"], "failed");
    assert_eq!(last["code"], 21);
    assert_eq!(
        last["message"],
        "step `flaky` failed after 3 attempts: boom"
    );
    // The backoffs (10ms, then 20ms) separate the attempts.
    let started: Vec<chrono::DateTime<chrono::FixedOffset>> = step_events(&events)
        .iter()
        .filter(|e| e["status"] == "started")
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(e["time"].as_str().expect("time"))
                .expect("rfc3339")
        })
        .collect();
    assert!((started[1] - started[0]).num_milliseconds() >= 10);
    assert!((started[2] - started[1]).num_milliseconds() >= 20);
}

#[test]
fn retry_succeeds_when_a_later_attempt_does() {
    // The step fails until 150ms have passed since the run started: the first attempt (at
    // once) fails, the second (after the 200ms backoff) succeeds.
    let script = Script::new(
        r#"goal: "retry recovers"
let t0 = now()
action warm():
    assert now() - t0 >= 0.15, "still cold"
    return "warm"
workflow w:
    steps:
        - warm as state retry=3 backoff=200ms
        - print(state)
"#,
    );
    let o = run_ok_with(&script, &["--events", EVENTS]);
    assert_eq!(o.output, "warm\n");
    let events = script.events();
    let warm: Vec<Value> = step_events(&events)
        .iter()
        .filter(|e| e["step"] == "warm")
        .map(|e| json!([e["status"], e["attempt"], e.get("error"), e.get("backoff")]))
        .collect();
    assert_eq!(
        warm,
        vec![
            json!(["started", 1, null, null]),
            json!(["retrying", 1, "still cold", "200ms"]),
            json!(["started", 2, null, null]),
            json!(["succeeded", 2, null, null]),
        ]
    );
}

#[test]
fn step_timeout_is_a_timeout_error() {
    let script = Script::new(
        r#"goal: "step timeout"
action slow():
    sleep 250ms
    return 1
workflow w:
    steps:
        - slow as r timeout=50ms
        - print("unreached")
"#,
    );
    let o = run_expect(&script, &["--events", EVENTS], 23);
    assert_eq!(o.output, "");
    assert_eq!(o.status["message"], "step `slow` timed out after 50ms");
    assert_eq!(o.status["line"], 7);
    assert_eq!(arrow(&o.stderr), "t.aether:7:11");
    assert!(o.elapsed < Duration::from_millis(250), "{:?}", o.elapsed);
    let events = script.events();
    let failed = step_events(&events)
        .into_iter()
        .find(|e| e["status"] == "failed")
        .expect("a failed step");
    assert_eq!(failed["error"], "step `slow` timed out after 50ms");
    assert_eq!(failed["attempt"], 1);
}

#[test]
fn step_timeout_as_a_string_with_retry() {
    let o = run_fails(
        r#"goal: "timeout retried"
action slow():
    sleep 200ms
    return 1
workflow w:
    steps:
        - slow as r retry=1 backoff=10ms timeout="30ms"
"#,
        &[],
        23,
        7,
        "step `slow` failed after 2 attempts: step `slow` timed out after 30ms",
    );
    assert_eq!(o.output, "");
}

#[test]
fn requires_granted_runs_the_step_and_denied_fails_before_it() {
    let script = Script::new(
        r#"goal: "requires"
require:
    capabilities:
        - "graphics.render"
action render(tag):
    print("rendered", tag)
    return 1
workflow w:
    steps:
        - render("granted") as r requires=["graphics.render"]
        - render("denied") requires=["net.raw"]
        - print("unreached")
"#,
    );
    let o = run_expect(&script, &["--events", EVENTS], 21);
    assert_eq!(o.output, "rendered granted\n");
    assert_eq!(o.status["line"], 11);
    assert_eq!(
        o.status["message"],
        "step `render` requires capability `net.raw`, which the script does not declare (add it to `require: capabilities:`)"
    );
    let events = script.events();
    let steps: Vec<Value> = step_events(&events)
        .iter()
        .map(|e| json!([e["line"], e["status"]]))
        .collect();
    // The denied step never starts.
    assert_eq!(
        steps,
        vec![json!([10, "started"]), json!([10, "succeeded"])]
    );
}

#[test]
fn on_error_handler_runs_with_the_error_and_the_original_code_is_kept() {
    let o = run_fails(
        r#"goal: "on_error"
on_error:
    - when: TIMEOUT_ERROR
      do: print("wrong handler")
    - when: RuntimeError
      do: report(error)
    - when: Any
      do: print("only the first match runs")
action report(e):
    print("handled", e)
    print(keys(e), type(e.code), type(e.line))
print("before")
let d = {a: 1}
print(d.b)
print("after")
"#,
        &[],
        21,
        14,
        "map has no key \"b\" (keys present: \"a\")",
    );
    assert_eq!(
        o.output,
        concat!(
            "before\n",
            "handled {\"code\": 21, \"code_name\": \"RUNTIME_ERROR\", \"message\": \"map has no key \\\"b\\\" (keys present: \\\"a\\\")\", \"line\": 14}\n",
            "[\"code\", \"code_name\", \"message\", \"line\"] int int\n",
        )
    );
    assert!(
        o.stderr.contains(
            "  = note: the on_error rule `when: RuntimeError` ran; the run still fails\n"
        ),
        "{}",
        o.stderr
    );
}

#[test]
fn on_error_timeout_alias_and_permission_alias() {
    let o = run_fails(
        r#"goal: "on_error timeout"
on_error:
    - when: Timeout
      do: print("timeout handler", error.code, error.code_name, error.line)
sleep 250ms
print("never")
"#,
        &["--timeout", "50ms"],
        23,
        5,
        "the run's time budget of 50ms ran out (policy timeout or --timeout)",
    );
    assert_eq!(o.output, "timeout handler 23 TIMEOUT_ERROR 5\n");

    let src = r#"goal: "on_error permission"
on_error:
    - when: PermissionError
      do: print("permission handler", error.code_name, error.line)
    - when: Any
      do: print("any handler", error.message)
action go(d):
    return 1 / d
workflow w:
    steps:
        - STEP
"#;
    let o = run_expect(
        &Script::new(&src.replace("STEP", "go(1) requires=[\"net.raw\"]")),
        &[],
        21,
    );
    assert_eq!(o.output, "permission handler RUNTIME_ERROR 11\n");
    // A plain runtime error is not a permission error: `Any` handles it.
    let o = run_expect(&Script::new(&src.replace("STEP", "go(0)")), &[], 21);
    assert_eq!(o.output, "any handler division by zero in 1 / 0\n");
}

#[test]
fn on_error_without_a_matching_rule_runs_nothing() {
    let o = run_fails(
        r#"goal: "no match"
on_error:
    - when: TIMEOUT_ERROR
      do: print("not me")
assert false, "plain"
"#,
        &[],
        21,
        5,
        "plain",
    );
    assert_eq!(o.output, "");
    assert!(!o.stderr.contains("on_error rule"), "{}", o.stderr);
}

#[test]
fn on_error_handler_failure_is_reported_and_the_original_error_wins() {
    let o = run_fails(
        r#"goal: "handler fails"
on_error:
    - when: Any
      do: fix(error)
action fix(e):
    print("fixing", e.code)
    let z = 1 / 0
print(1 + [1])
"#,
        &[],
        21,
        8,
        "cannot apply + to int and list",
    );
    assert_eq!(o.output, "fixing 21\n");
    assert!(
        o.stderr.contains("error: the on_error handler failed too:\nerror[RUNTIME_ERROR]: division by zero in 1 / 0\n"),
        "{}",
        o.stderr
    );
}

#[test]
fn on_error_after_max_steps_gets_a_fresh_budget() {
    let o = run_fails_somewhere(
        r#"goal: "handler budget"
policy:
    max_steps: 2000
on_error:
    - when: Timeout
      do: cleanup()
action cleanup():
    let n = 0
    for i in range(100):
        n = n + i
    print("cleanup ran", n)
let i = 0
while true:
    i = i + 1
"#,
        &[],
        23,
        "the step budget of 2000 instructions ran out (policy max_steps)",
    );
    assert_eq!(o.output, "cleanup ran 4950\n");
}

#[test]
fn transaction_commit_releases_held_events() {
    let script = Script::new(
        r#"goal: "transaction"
action note(x):
    emit "note" x
emit "before"
transaction:
    - note(1)
    - log("inside")
    - metrics({load: 0.5})
emit "after"
transaction:
    emit "stmt" [1]
    print("in tx")
"#,
    );
    let o = run_ok_with(&script, &["--events", EVENTS]);
    assert_eq!(o.output, "in tx\n");
    let events = script.events();
    let body = shapes(&events[1..events.len() - 1]);
    assert_eq!(
        body,
        vec![
            json!({"kind": "emit", "line": 4, "name": "before", "payload": null}),
            json!({"kind": "emit", "line": 3, "name": "note", "payload": 1}),
            json!({"kind": "log", "line": 7, "level": "info", "message": "inside"}),
            json!({"kind": "metric", "line": 8, "name": "load", "value": 0.5}),
            json!({"kind": "transaction", "line": 5, "outcome": "commit", "events": 3}),
            json!({"kind": "emit", "line": 9, "name": "after", "payload": null}),
            json!({"kind": "emit", "line": 11, "name": "stmt", "payload": [1]}),
            json!({"kind": "transaction", "line": 10, "outcome": "commit", "events": 1}),
        ]
    );
}

#[test]
fn transaction_failure_drops_held_events_and_records_rollback() {
    let script = Script::new(
        r#"goal: "rollback"
emit "before"
transaction:
    emit "held" 1
    narrate("held too")
    assert false, "abort tx"
emit "after"
"#,
    );
    let o = run_expect(&script, &["--events", EVENTS], 21);
    assert_eq!(o.status["message"], "abort tx");
    assert_eq!(o.status["line"], 6);
    let events = script.events();
    let kinds: Vec<Value> = events
        .iter()
        .map(|e| {
            json!([
                e["kind"],
                e.get("name"),
                e.get("outcome"),
                e.get("events_dropped")
            ])
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            json!(["run", null, null, null]),
            json!(["emit", "before", null, null]),
            json!(["transaction", null, "rollback", 2]),
            json!(["run", null, null, null]),
        ]
    );
    assert_eq!(events.last().expect("last")["status"], "failed");
}

#[test]
fn transaction_in_a_retried_step_rolls_back_each_attempt() {
    let script = Script::new(
        r#"goal: "rollback per attempt"
action risky(n):
    transaction:
        emit "attempt" n
        assert false, "nope"
workflow w:
    steps:
        - risky(1) retry=1 backoff=10ms
"#,
    );
    let o = run_expect(&script, &["--events", EVENTS], 21);
    assert_eq!(
        o.status["message"],
        "step `risky` failed after 2 attempts: nope"
    );
    let events = script.events();
    assert!(of_kind(&events, "emit").is_empty(), "{events:?}");
    let rollbacks = of_kind(&events, "transaction");
    assert_eq!(rollbacks.len(), 2, "{events:?}");
    for r in rollbacks {
        assert_eq!(r["outcome"], "rollback");
        assert_eq!(r["events_dropped"], 1);
    }
}

#[test]
fn display_rules() {
    let out = run_ok(
        r#"goal: "display"
print(3.0, 0.1 + 0.2, 1e21, 1e20, -0.5, 7 / 2, 6 / 3, 2.5e-7, 1e-7, 0.000001)
print(1500ms, 90s, 3600s, 0s, 999ms, 1.5s + 500ms, 2 * 30s, 1d + 1h + 1m + 1s)
print("top-level strings print raw", "tab\there")
print(["a", "q\"x", "é", "\n", "\u{1}", "a\\b"], [1.0, 90s, null, true])
print({z: 1, a: {"k k": [2, "s"]}, m: 1500ms})
print(str(1.0), str(90s), str([1.5]), format("{} of {}", 2.0, 90s))
print(null, true, [], {})
print()
print(-7 % 3, 7 % -3, 1 == 1.0)
"#,
    );
    assert_eq!(
        out,
        concat!(
            "3.0 0.30000000000000004 1e+21 100000000000000000000.0 -0.5 3.5 2.0 2.5e-7 1e-7 0.000001\n",
            "1.5s 1m30s 1h 0s 999ms 2s 1m 1d1h1m1s\n",
            "top-level strings print raw tab\there\n",
            "[\"a\", \"q\\\"x\", \"é\", \"\\n\", \"\\u0001\", \"a\\\\b\"] [1.0, 1m30s, null, true]\n",
            "{\"z\": 1, \"a\": {\"k k\": [2, \"s\"]}, \"m\": 1.5s}\n",
            "1.0 1m30s [1.5] 2.0 of 1m30s\n",
            "null true [] {}\n",
            "\n",
            "-1 1 true\n",
        )
    );
}

#[test]
fn log_narrate_trace_and_metrics_go_to_stderr_and_events_never_stdout() {
    let script = Script::new(
        r#"goal: "observability"
print("out 1")
log("hello")
log("careful", level="warning")
log("hidden", level="debug")
narrate("a story")
trace("debug")
log("now visible", level="debug")
metrics({cpu: 0.5})
print("out 2")
metadata:
    requires: ["homeostasis"]
"#,
    );
    let o = run_ok_with(&script, &["--events", EVENTS]);
    assert_eq!(o.output, "out 1\nout 2\n");
    let expected_stderr = "[info] hello\n[warning] careful\n[narrate] a story\n[debug] now visible\nAETHER_ERROR_CODE:0\n";
    assert_eq!(o.stderr, expected_stderr);
    let events = script.events();
    assert_eq!(
        shapes(&events[1..events.len() - 1]),
        vec![
            json!({"kind": "log", "line": 3, "level": "info", "message": "hello"}),
            json!({"kind": "log", "line": 4, "level": "warning", "message": "careful"}),
            json!({"kind": "narrate", "line": 6, "text": "a story"}),
            json!({"kind": "trace", "line": 7, "level": "debug"}),
            json!({"kind": "log", "line": 8, "level": "debug", "message": "now visible"}),
            json!({"kind": "metric", "line": 9, "name": "cpu", "value": 0.5}),
        ]
    );
    // AETHERRA_QUIET keeps them in the event stream only.
    let quiet = script.run_env(&["--events", EVENTS], &[("AETHERRA_QUIET", "1")]);
    assert_eq!(quiet.code, 0);
    assert_eq!(quiet.stdout, "out 1\nout 2\n");
    assert_eq!(quiet.stderr, "");
    assert_eq!(of_kind(&script.events(), "log").len(), 3);
}

#[test]
fn args_and_policy_are_readable() {
    let script = Script::new(
        r#"goal: "args"
policy:
    timeout: 5s
    max_steps: 100000
print(args)
print(args.name, get(args, "missing", "default"), type(args.count))
print(policy.timeout, policy.max_steps)
"#,
    );
    let o = run_ok_with(
        &script,
        &[
            "--arg",
            "name=Ada",
            "--arg",
            "greeting=a=b",
            "--arg",
            "empty=",
            "--arg",
            "count=3",
        ],
    );
    assert_eq!(
        o.output,
        "{\"name\": \"Ada\", \"greeting\": \"a=b\", \"empty\": \"\", \"count\": \"3\"}\nAda default str\n5s 100000\n"
    );
    // Without --arg, `args` is an empty map.
    let o = run_expect(&script, &[], 21);
    assert_eq!(o.output, "{}\n");
    assert_eq!(
        o.status["message"],
        "map has no key \"name\" (the map is empty)"
    );
}

#[test]
fn stdout_is_program_output_then_the_status_line_last() {
    let script = Script::new(
        r#"goal: "ordering"
on_error:
    - when: Any
      do: print("handler output")
print("one")
log("to stderr")
print("two")
emit "e"
print("three")
assert false, "stop"
"#,
    );
    let res = script.run(&["--json-status", "--emit-error-code", "--events", EVENTS]);
    assert_eq!(res.code, 21);
    let lines: Vec<&str> = res.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", res.stdout);
    assert_eq!(lines[..4], ["one", "two", "three", "handler output"]);
    let status = object(lines[4]);
    assert_eq!(status["code"], 21);
    assert_eq!(status["line"], 10);
    assert!(!res.stdout.contains("to stderr") && !res.stdout.contains("AETHER_ERROR_CODE"));
    assert!(
        res.stderr.starts_with("[info] to stderr\n"),
        "{}",
        res.stderr
    );

    // On success too, and without --json-status stdout holds the program's output only.
    let ok = Script::new("goal: \"ok\"\nprint(\"a\", 1)\nprint(\"b\")\n");
    let res = ok.run(&["--json-status"]);
    let (output, status) = split_status(&res.stdout);
    assert_eq!(output, "a 1\nb\n");
    assert_eq!(status["ok"], true);
    let plain = ok.run(&[]);
    assert_eq!(
        (plain.code, plain.stdout.as_str(), plain.stderr.as_str()),
        (0, "a 1\nb\n", "")
    );
}

#[test]
fn warnings_go_to_stderr_and_the_script_runs() {
    let script = Script::new(
        r#"goal: "warnings"
1 + 1
print("ran")
"#,
    );
    let o = run_ok_with(&script, &[]);
    assert_eq!(o.output, "ran\n");
    assert!(o.stderr.contains("A206"), "{}", o.stderr);
    let quiet = script.run_env(&[], &[("AETHERRA_QUIET", "1")]);
    assert_eq!(
        (quiet.code, quiet.stdout.as_str(), quiet.stderr.as_str()),
        (0, "ran\n", "")
    );
}

#[test]
fn trigger_runs_the_action_as_a_kernel_task_before_the_run_ends() {
    let o = run_ok(
        r#"goal: "kernel"
metadata:
    requires: ["kernel"]
action job(n, suffix = "!"):
    sleep 50ms
    print("job", str(n) + suffix)
trigger job(n=1)
print("main done")
"#,
    );
    // The task starts when the main body waits or ends; the run waits for it.
    assert_eq!(o, "main done\njob 1!\n");
}

#[test]
fn profile_test_refuses_an_undeclared_capability_first() {
    let src = r#"goal: "capabilities"
print("before")
memory.store("x")
"#;
    let denied = "`memory.store` needs capability `memory.write`, which the script does not declare (add it to `require: capabilities:`)";
    let o = run_fails(src, &["--profile", "test"], 21, 3, denied);
    assert_eq!(o.output, "before\n");
    // The profile also comes from AETHERRA_PROFILE.
    let res = Script::new(src).run_env(&["--json-status"], &[("AETHERRA_PROFILE", "test")]);
    assert_eq!(res.code, 21);
    assert_eq!(split_status(&res.stdout).1["message"], denied);
    // Declared: the capability passes and the record is stored.
    let declared = Script::new(
        r#"goal: "capabilities"
require:
    capabilities:
        - "memory.write"
        - "memory.read"
let id = memory.store("x")
print(memory.get(id).content)
"#,
    );
    let o = run_ok_with(&declared, &["--profile", "test"]);
    assert_eq!(o.output, "x\n");
    run_fails(
        r#"goal: "trigger"
action job(n):
    print(n)
trigger job(n=1)
"#,
        &["--profile", "test"],
        21,
        4,
        "`trigger` needs capability `kernel.submit`, which the script does not declare (add it to `require: capabilities:`)",
    );
}

#[test]
fn state_dir_is_created() {
    let script = Script::new("goal: \"state\"\nprint(\"ok\")\n");
    let o = run_ok_with(&script, &["--state-dir", "deep/state/dir"]);
    assert_eq!(o.output, "ok\n");
    assert!(script.path().join("deep/state/dir").is_dir());
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn division_by_zero_is_a_runtime_error() {
    let o = run_fails(
        "goal: \"div\"\nprint(\"a\")\nprint(1 / 0)\n",
        &[],
        21,
        3,
        "division by zero in 1 / 0",
    );
    assert_eq!(o.output, "a\n");
    assert_eq!(arrow(&o.stderr), "t.aether:3:7");
    run_fails(
        "goal: \"mod\"\nlet z = 0\nprint(7 % z)\n",
        &[],
        21,
        3,
        "division by zero in 7 % 0",
    );
}

#[test]
fn missing_map_key_lists_the_keys_present() {
    run_fails(
        "goal: \"keys\"\nlet m = {b: 1, a: 2}\nprint(m.zz)\n",
        &[],
        21,
        3,
        "map has no key \"zz\" (keys present: \"b\", \"a\")",
    );
    run_fails(
        "goal: \"keys\"\nlet m = {b: 1}\nprint(m[\"zz\"])\n",
        &[],
        21,
        3,
        "map has no key \"zz\" (keys present: \"b\")",
    );
}

#[test]
fn int_overflow_is_a_runtime_error() {
    run_fails(
        "goal: \"overflow\"\nlet big = 9223372036854775807\nprint(big + 1)\n",
        &[],
        21,
        3,
        "integer overflow in 9223372036854775807 + 1",
    );
    run_fails(
        "goal: \"overflow\"\nlet big = 9223372036854775807\nprint(big * 2)\n",
        &[],
        21,
        3,
        "integer overflow in 9223372036854775807 * 2",
    );
    run_fails(
        "goal: \"overflow\"\nlet m = -9223372036854775807 - 1\nprint(-m)\n",
        &[],
        21,
        3,
        "integer overflow in -(-9223372036854775808)",
    );
}

#[test]
fn type_errors_are_runtime_errors() {
    // Through a variable: `"n=" + 1` with a literal is caught by `check` (A132).
    run_fails(
        "goal: \"types\"\nlet n = 1\nprint(\"n=\" + n)\n",
        &[],
        21,
        3,
        "cannot add str and int: convert with str() first",
    );
    run_fails(
        "goal: \"types\"\nprint(1 < \"a\")\n",
        &[],
        21,
        2,
        "cannot compare int with str",
    );
    run_fails(
        "goal: \"types\"\nfor x in 5:\n    print(x)\n",
        &[],
        21,
        2,
        "cannot iterate over int",
    );
    run_fails(
        "goal: \"types\"\nprint(1e308 * 10.0)\n",
        &[],
        21,
        2,
        "float result is not finite in 1e+308 * 10.0",
    );
}

#[test]
fn failed_assert_is_a_runtime_error_with_its_message() {
    let o = run_fails(
        "goal: \"assert\"\nlet n = 3\nassert n > 5, \"n must exceed 5, got \" + str(n)\nprint(\"no\")\n",
        &[],
        21,
        3,
        "n must exceed 5, got 3",
    );
    assert_eq!(o.output, "");
    run_fails(
        "goal: \"assert\"\nassert 1 > 5\n",
        &[],
        21,
        2,
        "assertion failed",
    );
}

#[test]
fn call_depth_limit_is_256() {
    let src = r#"goal: "depth"
action down(n, limit):
    if n == limit:
        return n
    return down(n + 1, limit)
print(down(1, 256))
print(down(1, 257))
"#;
    let o = run_fails(src, &[], 21, 5, "call depth limit of 256 exceeded");
    // 256 nested calls are allowed; the 257th is reported at the call that exceeded it.
    assert_eq!(o.output, "256\n");
    assert_eq!(arrow(&o.stderr), "t.aether:5:12");
    // The 255 identical recursive frames are shown once, with a count.
    assert_eq!(
        o.stderr
            .matches("  in `down`, called at t.aether:5:12\n")
            .count(),
        1
    );
    assert!(
        o.stderr.contains("  ... the same frame 254 more times\n"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("  in `down`, called at t.aether:7:7\n"),
        "{}",
        o.stderr
    );
}

#[test]
fn reading_an_uninitialised_top_level_variable_is_a_runtime_error() {
    let o = run_fails(
        r#"goal: "uninit"
action show():
    print(limit)
show()
let limit = 3
"#,
        &[],
        21,
        3,
        "top-level variable `limit` is read before it is initialised",
    );
    assert!(
        o.stderr.contains("  in `show`, called at t.aether:4:1\n"),
        "{}",
        o.stderr
    );
}

#[test]
fn timeout_flag_ends_the_run_with_timeout_error() {
    let o = run_fails(
        "goal: \"timeout\"\nprint(\"start\")\nsleep 250ms\nprint(\"never\")\n",
        &["--timeout", "50ms"],
        23,
        3,
        "the run's time budget of 50ms ran out (policy timeout or --timeout)",
    );
    assert_eq!(o.output, "start\n");
    assert!(o.elapsed < Duration::from_millis(250), "{:?}", o.elapsed);
    // The smaller of --timeout and `policy: timeout` applies, either way round.
    let src = "goal: \"t\"\npolicy:\n    timeout: POLICY\nsleep 250ms\n";
    run_fails(
        &src.replace("POLICY", "5s"),
        &["--timeout", "60ms"],
        23,
        4,
        "the run's time budget of 60ms ran out (policy timeout or --timeout)",
    );
    run_fails(
        &src.replace("POLICY", "60ms"),
        &["--timeout", "5s"],
        23,
        4,
        "the run's time budget of 60ms ran out (policy timeout or --timeout)",
    );
    // A bare number is seconds.
    run_fails(
        "goal: \"t\"\nsleep 250ms\n",
        &["--timeout", "0.05"],
        23,
        2,
        "the run's time budget of 50ms ran out (policy timeout or --timeout)",
    );
}

#[test]
fn policy_timeout_ends_a_busy_loop() {
    let o = run_fails_somewhere(
        r#"goal: "policy timeout"
policy:
    timeout: 100ms
print("start")
let n = 0
while true:
    n = n + 1
"#,
        &[],
        23,
        "the run's time budget of 100ms ran out (policy timeout or --timeout)",
    );
    assert_eq!(o.output, "start\n");
}

#[test]
fn policy_max_steps_ends_the_run_with_timeout_error() {
    let o = run_fails_somewhere(
        r#"goal: "max steps"
policy:
    max_steps: 5000
print("start")
let i = 0
while true:
    i = i + 1
"#,
        &[],
        23,
        "the step budget of 5000 instructions ran out (policy max_steps)",
    );
    assert_eq!(o.output, "start\n");
    let o = run_fails_somewhere(
        r#"goal: "max steps in an action"
policy:
    max_steps: 3000
action spin():
    let n = 0
    while true:
        n = n + 1
spin()
"#,
        &[],
        23,
        "the step budget of 3000 instructions ran out (policy max_steps)",
    );
    assert!(
        o.stderr.contains("  in `spin`, called at t.aether:8:1\n"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_script_that_fails_its_check_does_not_run() {
    let script = Script::new(
        r#"goal: "refused"
print("must not print")
emit "must not emit"
undefined_fn(1)
"#,
    );
    let o = run_expect(&script, &["--events", EVENTS], 25);
    assert_eq!(o.output, "", "nothing runs");
    assert_eq!(o.status["phase"], "validate");
    assert_eq!(o.status["line"], 4);
    assert_eq!(o.status["message"], "unknown function `undefined_fn`");
    assert!(o.stderr.contains("A101"), "{}", o.stderr);
    assert!(
        !script.path().join(EVENTS).exists(),
        "no event stream for a refused script"
    );

    let o = run_expect(
        &Script::new("goal: \"refused\"\nprint(\"must not print\")\nlet = 3\n"),
        &[],
        20,
    );
    assert_eq!(o.output, "");
    assert_eq!(o.status["phase"], "parse");
    assert_eq!(o.status["line"], 3);

    // Assigning an undeclared variable is a check-time error too.
    let o = run_expect(
        &Script::new("goal: \"refused\"\nprint(\"must not print\")\nnever_declared = 3\n"),
        &[],
        25,
    );
    assert_eq!(o.output, "");
    assert_eq!(o.status["line"], 3);
}

#[test]
fn usage_errors_exit_2() {
    let script = Script::new("goal: \"usage\"\nprint(\"must not print\")\n");
    let cases: [&[&str]; 6] = [
        &["--arg", "novalue"],
        &["--arg", "=v"],
        &["--timeout", "abc"],
        &["--timeout", "0"],
        &["--timeout=-1s"],
        &["--profile", "staging"],
    ];
    for args in cases {
        let mut all = vec!["--json-status", "--emit-error-code"];
        all.extend_from_slice(args);
        let res = script.run(&all);
        assert_eq!(res.code, 2, "{args:?}\nstderr:\n{}", res.stderr);
        assert_eq!(res.stdout, "", "{args:?}: nothing runs, no status line");
        assert_error_code_line(&res.stderr, 2);
    }
    let res = script.run_env(&["--emit-error-code"], &[("AETHERRA_PROFILE", "bogus")]);
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert_eq!(res.stdout, "");
    assert!(res.stderr.contains("AETHERRA_PROFILE"), "{}", res.stderr);
    assert_error_code_line(&res.stderr, 2);
    let mut cmd = aether(script.path());
    cmd.args(["run", "--json-status"]);
    let res = finish(cmd);
    assert_eq!(res.code, 2);
    assert_eq!(res.stdout, "");
}

#[test]
fn calls_the_compiler_cannot_run_yet_are_unsupported() {
    // A call through a value that is not a plain variable, and keyword arguments in a call
    // through a variable, are refused before the program starts: nothing is printed.
    let o = run_fails(
        "goal: \"call value\"\nlet m = {a: 1}\nprint(\"before\")\nm.a()\n",
        &[],
        24,
        4,
        "not available yet: calls through values",
    );
    assert_eq!(o.output, "", "the program is refused before it starts");
    assert_eq!(arrow(&o.stderr), "t.aether:4:1");
    let o = run_fails(
        r#"goal: "keyword through a variable"
action double(n):
    return n * 2
let f = double
print("before")
print(f(n=2))
"#,
        &[],
        24,
        6,
        "not available yet: keyword arguments in a call through a variable",
    );
    assert_eq!(o.output, "");
}

#[test]
fn calling_a_variable_calls_the_action_it_holds_and_nothing_else() {
    // Since 791a9cb action references are values: `let f = 1` then `f()` is a type error at
    // run time (RUNTIME_ERROR), no longer UNSUPPORTED_FEATURE.
    let out = run_ok(
        r#"goal: "action reference"
action double(n):
    return n * 2
let f = double
print(f(21), type(f))
"#,
    );
    assert_eq!(out, "42 action\n");
    let o = run_fails(
        "goal: \"call var\"\nlet f = 1\nprint(\"before\")\nf()\n",
        &[],
        21,
        4,
        "a value of type int is not callable",
    );
    assert_eq!(o.output, "before\n");
    assert_eq!(arrow(&o.stderr), "t.aether:4:1");
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = aether(dir.path());
    cmd.args(["run", "nosuch.aether", "--json-status", "--emit-error-code"]);
    let res = finish(cmd);
    assert_eq!(res.code, 26);
    let lines: Vec<&str> = res.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", res.stdout);
    let status = object(lines[0]);
    let keys: Vec<&str> = status.keys().map(String::as_str).collect();
    assert_eq!(keys, STATUS_KEYS);
    assert_eq!(status["ok"], false);
    assert_eq!(status["code"], 26);
    assert_eq!(status["code_name"], "IO_ERROR");
    assert_eq!(status["phase"], "read");
    assert_eq!(status["line"], Value::Null);
    assert_eq!(status["file"], "nosuch.aether");
    assert!(
        status["message"]
            .as_str()
            .expect("message")
            .contains("nosuch.aether"),
        "{status:?}"
    );
    assert_error_code_line(&res.stderr, 26);
}

#[test]
fn unwritable_events_file_is_an_io_error() {
    let script = Script::new("goal: \"events\"\nprint(\"must not print\")\n");
    let o = run_expect(&script, &["--events", "no/such/dir/events.jsonl"], 26);
    assert_eq!(o.output, "");
    assert!(
        o.status["message"]
            .as_str()
            .expect("message")
            .starts_with("cannot write events to `no/such/dir/events.jsonl`"),
        "{:?}",
        o.status
    );
}

// ---------------------------------------------------------------------------------------------
// Snapshots

#[test]
fn snapshot_runtime_error_with_a_backtrace_through_two_actions() {
    let script = Script::new(
        r#"goal: "backtrace"
action ratio(total, count):
    return total / count

action report(stats):
    let r = ratio(stats.total, stats.count)
    print("ratio", r)

print("start")
report({total: 10, count: 0})
"#,
    );
    let res = script.run(&["--emit-error-code"]);
    assert_eq!(res.code, 21);
    assert_eq!(res.stdout, "start\n");
    insta::assert_snapshot!("runtime_error_backtrace", res.stderr);
}

#[test]
fn snapshot_events_of_a_small_workflow() {
    let script = Script::new(
        r#"goal: "events snapshot"
action fetch(src):
    log("fetching " + src)
    return {src: src, n: 3}
action publish(n):
    transaction:
        emit "published" {n: n}
    return n
workflow nightly:
    source: "db"
    steps:
        - fetch(workflow.source) as data
        - publish(data.n * 2) as sent
        - print("sent", sent)
"#,
    );
    let o = run_ok_with(&script, &["--events", EVENTS]);
    assert_eq!(o.output, "sent 6\n");
    script.events(); // the common shape checks
    let redacted: Vec<String> = script
        .event_lines()
        .iter()
        .map(|l| {
            let mut m = object(l);
            m.insert("time".into(), json!("[time]"));
            Value::Object(m).to_string()
        })
        .collect();
    insta::assert_snapshot!("events_small_workflow", redacted.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Known bugs (see the report); each test states what the contract requires.

/// With `policy: max_steps` the budget can run out on any instruction of a loop; the error
/// must point into the loop (lines 5-6), whichever instruction that is.
#[test]
fn max_steps_error_points_into_the_loop_whatever_the_budget() {
    for budget in 3000..3016 {
        let src = format!(
            "goal: \"x\"\npolicy:\n    max_steps: {budget}\naction spin():\n    while true:\n        let x = [1]\nprint(\"start\")\nspin()\n"
        );
        let res = Script::new(&src).run(&["--json-status"]);
        assert_eq!(res.code, 23, "max_steps {budget}");
        let (_, status) = split_status(&res.stdout);
        let line = status["line"].as_u64().expect("a line");
        assert!(
            (5..=6).contains(&line),
            "max_steps {budget}: reported at line {line}, outside the loop:\n{}",
            res.stderr
        );
        assert!(
            res.stderr.contains("  in `spin`, called at t.aether:8:1\n"),
            "max_steps {budget}:\n{}",
            res.stderr
        );
    }
}

/// A run timeout that fires while an action busy-loops must keep the backtrace (the
/// `max_steps` and `sleep` paths do).
#[test]
fn run_timeout_in_a_busy_action_keeps_the_backtrace() {
    let script = Script::new(
        r#"goal: "busy"
action spin():
    let n = 0
    while true:
        n = n + 1
print("start")
spin()
"#,
    );
    let o = run_expect(&script, &["--timeout", "100ms"], 23);
    assert_eq!(o.output, "start\n");
    let line = o.status["line"].as_u64().expect("a line");
    assert!((4..=5).contains(&line), "line {line}:\n{}", o.stderr);
    assert!(
        o.stderr.contains("  in `spin`, called at t.aether:7:1\n"),
        "{}",
        o.stderr
    );
}

/// A transaction cut short by a timeout is a failure inside it: its held events are dropped
/// and the rollback is recorded, as for any other failure (and as `max_steps` does).
#[test]
fn transaction_cut_by_a_timeout_records_its_rollback() {
    let script = Script::new(
        r#"goal: "tx timeout"
emit "before"
let t0 = now()
transaction:
    emit "held" 1
    while now() - t0 < 2:
        t0 = t0
emit "after"
"#,
    );
    run_expect(&script, &["--timeout", "50ms", "--events", EVENTS], 23);
    let events = script.events();
    assert!(
        !events.iter().any(|e| e.get("name") == Some(&json!("held"))),
        "held events are dropped: {events:?}"
    );
    let tx = of_kind(&events, "transaction");
    assert_eq!(tx.len(), 1, "{events:?}");
    assert_eq!(tx[0]["outcome"], "rollback");
    assert_eq!(tx[0]["events_dropped"], 1);

    let script = Script::new(
        r#"goal: "tx step timeout"
action slow():
    let t0 = now()
    transaction:
        emit "held" 1
        while now() - t0 < 2:
            t0 = t0
workflow w:
    steps:
        - slow timeout=30ms
"#,
    );
    run_expect(&script, &["--events", EVENTS], 23);
    let events = script.events();
    let tx = of_kind(&events, "transaction");
    assert_eq!(tx.len(), 1, "{events:?}");
    assert_eq!(tx[0]["outcome"], "rollback");
    assert_eq!(tx[0]["events_dropped"], 1);
}

#[test]
fn run_parses_its_arguments_alone_yet_help_version_and_usage_errors_are_the_full_parsers() {
    // `aether run` parses with its own arguments first (start-up): what the full command
    // line prints must not change. The run's own parser has no `about` and no version.
    let script = Script::new("goal: \"hi\"\nprint(\"hello\")\n");
    let res = script.run(&[]);
    assert_eq!(
        (res.code, res.stdout.as_str()),
        (0, "hello\n"),
        "{}",
        res.stderr
    );
    let plain = |args: &[&str]| {
        let mut cmd = aether(script.path());
        cmd.args(args);
        finish(cmd)
    };
    let help = plain(&["run", "--help"]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout
            .starts_with("Check a script, then run it (workflows, budgets, events, on_error)\n\nUsage: aether run [OPTIONS] <FILE>\n"),
        "{}",
        help.stdout
    );
    for flag in ["--version", "-V"] {
        let version = plain(&["run", flag]);
        assert_eq!(version.code, 0, "{flag}");
        assert_eq!(
            version.stdout,
            format!("aether-run {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
    let missing = plain(&["run"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("Usage: aether run <FILE>"),
        "{}",
        missing.stderr
    );
    let bogus = plain(&["run", FILE, "--bogus"]);
    assert_eq!(bogus.code, 2);
    assert!(
        bogus.stderr.contains("unexpected argument '--bogus'")
            && bogus.stderr.contains("Usage: aether run <FILE>"),
        "{}",
        bogus.stderr
    );
}
