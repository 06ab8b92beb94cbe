//! End-to-end tests of the run side of durable runs (docs/durable.md): journaled clock and
//! durable timers, `parallel:` replayed in the recorded completion order, signals, the
//! `waiting` status and the worker; SIGKILL through the real binary.

mod durable_support;

use std::time::{Duration, Instant};

use durable_support::Dir;

#[test]
fn a_resumed_sleep_waits_only_the_remainder_and_now_is_replayed() {
    let d = Dir::new();
    // A replay that read the clock afresh would store another text: NONDETERMINISM_ERROR.
    d.script("memory.store(str(now()), tags=[\"t\"])\nprint(run_plugin(\"ledger\", \"a\", 0))\nsleep 4s\nprint(\"woke\")\n");
    d.kill_at("t1", 1, Duration::from_millis(1500));
    let start = Instant::now();
    let out = d.aether(&["runs", "resume", "t1"]);
    let took = start.elapsed();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "did a\nwoke\n");
    assert!(
        took < Duration::from_millis(3500),
        "the resumed sleep waited {took:?}, not only the remainder of 4 s"
    );
    assert_eq!(d.ledger(), "a\n");
    let journal = d.aether(&["runs", "show", "t1", "--journal"]).stdout;
    assert!(journal.contains("now"), "{journal}");
    assert!(journal.contains("sleep"), "{journal}");
}

/// Branch `a` waits 2 s for its plugin, branch `b` sleeps 1 s and calls its plugin at once:
/// `b` goes first. Replayed, `a`'s answer is at hand at once; it waits for `b`'s recorded
/// completions, so the branches print (and call) in the order they first did.
const TWO_BRANCHES: &str = "action branch(name, pause, secs):\n    sleep pause\n    let r = run_plugin(\"ledger\", name, secs)\n    print(name)\n    memory.store(name, tags=[\"p\"])\n    return r\nparallel:\n    a: branch(\"a\", 0, 2)\n    b: branch(\"b\", 1, 0)\nawait a, b\nsleep 3s\nprint(a, b)\nprint(memory.count(tags=[\"p\"]))\n";

#[test]
fn parallel_branches_replay_in_the_recorded_completion_order() {
    let d = Dir::new();
    d.script(TWO_BRANCHES);
    d.kill_at("par", 2, Duration::from_millis(1800));
    let out = d.aether(&["runs", "resume", "par"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "b\na\ndid a did b\n2\n");
    assert_eq!(d.ledger(), "a\nb\n", "no effect ran twice");
}

#[test]
fn a_step_timeout_and_its_backoff_are_replayed_from_the_journal() {
    let d = Dir::new();
    // Attempt 1 times out after 1 s, the backoff waits 6 s: killed during the backoff, the
    // resumed run replays attempt 1's recorded timeout (its plugin call is not repeated)
    // and waits only what is left of the backoff before attempt 2.
    d.script("action slow():\n    return run_plugin(\"ledger\", \"s\", 3)\nworkflow w:\n    steps:\n        - slow as r retry=1 timeout=\"1s\" backoff=6s\n");
    d.kill_at("st", 1, Duration::from_millis(2500));
    assert_eq!(d.ledger(), "s\n");
    let start = Instant::now();
    let out = d.aether(&["runs", "resume", "st"]);
    let took = start.elapsed();
    assert_eq!(out.code, 23, "{}", out.stderr);
    assert!(out.stderr.contains("after 2 attempts"), "{}", out.stderr);
    assert_eq!(d.ledger(), "s\ns\n", "attempt 1 was not run again");
    assert!(took < Duration::from_millis(6000), "waited {took:?}");
    let journal = d.aether(&["runs", "show", "st", "--journal"]).stdout;
    assert!(journal.contains("backoff"), "{journal}");
}

/// Run `w.aether --id ID` in the background, its output captured.
fn start(d: &Dir, id: &str) -> std::process::Child {
    d.cmd(&["run", "w.aether", "--id", id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn aether")
}

fn finish(child: std::process::Child) -> (i32, String, String) {
    let out = child.wait_with_output().expect("aether ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const APPROVAL: &str = "print(run_plugin(\"ledger\", \"a\", 2))\nlet v = wait_signal(\"approve\", timeout=30s)\nprint(v.by)\nprint(run_plugin(\"ledger\", \"b\", 0))\n";

#[test]
fn a_signal_sent_before_the_wait_is_buffered_and_a_duplicate_key_is_ignored() {
    let d = Dir::new();
    d.script(APPROVAL);
    let child = start(&d, "sig1");
    while d.ledger().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The run is still in its plugin call: the signal waits in the mailbox.
    let sent = d.aether(&[
        "runs",
        "signal",
        "sig1",
        "approve",
        "--data",
        "{\"by\": \"ann\"}",
        "--key",
        "k1",
    ]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let again = d.aether(&[
        "runs",
        "signal",
        "sig1",
        "approve",
        "--data",
        "{\"by\": \"bob\"}",
        "--key",
        "k1",
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("already sent"), "{}", again.stderr);
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "did a\nann\ndid b\n");
    let show = d.status("sig1");
    let signals = show["signals"].as_array().expect("signals");
    assert_eq!(signals.len(), 1, "the duplicate was not stored: {show}");
    assert_eq!(
        signals[0]["consumed_by"], "0#3",
        "entry 0#2 is the deadline"
    );
}

#[test]
fn a_signal_sent_while_the_run_waits_and_after_a_crash_is_consumed_once() {
    let d = Dir::new();
    d.script(APPROVAL);
    // Killed while it waits: the resumed run waits again and takes the signal sent meanwhile.
    d.kill_at("sig2", 1, Duration::from_millis(2600));
    let sent = d.aether(&[
        "runs",
        "signal",
        "sig2",
        "approve",
        "--data",
        "{\"by\": \"cy\"}",
    ]);
    assert_eq!(sent.code, 0, "{}", sent.stderr);
    let out = d.aether(&["runs", "resume", "sig2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "did a\ncy\ndid b\n");
    assert_eq!(d.ledger(), "a\nb\n");
    // A signal sent while the run already waits wakes it.
    d.script("let v = wait_signal(\"go\")\nprint(v)\n");
    let child = start(&d, "sig3");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        d.aether(&["runs", "signal", "sig3", "go", "--data", "7"])
            .code,
        0
    );
    let (code, stdout, stderr) = finish(child);
    assert_eq!((code, stdout.as_str()), (0, "7\n"), "{stderr}");
    // Replaying the finished wait returns the recorded payload; the signal is not taken twice.
    let show = d.status("sig3");
    assert_eq!(show["signals"][0]["consumed_by"], "0#2");
}

#[test]
fn a_wait_times_out_and_wait_signal_needs_a_durable_run() {
    let d = Dir::new();
    d.script("let v = wait_signal(\"never\", timeout=1s)\n");
    let out = d.aether(&["run", "w.aether", "--durable"]);
    assert_eq!(out.code, 23, "{}", out.stderr);
    assert!(
        out.stderr.contains("no signal `never` arrived"),
        "{}",
        out.stderr
    );
    let plain = d.aether(&["run", "w.aether"]);
    assert_eq!(plain.code, 21, "{}", plain.stderr);
    assert!(
        plain.stderr.contains("wait_signal needs a durable run"),
        "{}",
        plain.stderr
    );
}

#[test]
fn bad_signals_are_refused_and_change_nothing() {
    let d = Dir::new();
    d.script("print(1)\n");
    assert_eq!(d.aether(&["run", "w.aether", "--id", "done-1"]).code, 0);
    let before = d.aether(&["runs", "show", "done-1", "--json"]).stdout;
    for (args, code, needle) in [
        (
            vec!["runs", "signal", "done-1", "go"],
            1,
            "is finished (succeeded)",
        ),
        (vec!["runs", "signal", "nope", "go"], 2, "no run `nope`"),
        (vec!["runs", "signal", "a/b", "go"], 2, "is not a run id"),
    ] {
        let out = d.aether(&args);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    d.script("let v = wait_signal(\"go\", timeout=2s)\n");
    let child = start(&d, "open-1");
    std::thread::sleep(Duration::from_millis(300));
    let bad = d.aether(&["runs", "signal", "open-1", "go", "--data", "{nope"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--data is not JSON"), "{}", bad.stderr);
    let (code, _, stderr) = finish(child);
    assert_eq!(code, 23, "the malformed signal was not delivered: {stderr}");
    assert_eq!(d.status("open-1")["signals"], serde_json::json!([]));
    assert_eq!(
        d.aether(&["runs", "show", "done-1", "--json"]).stdout,
        before
    );
}

#[test]
fn a_detached_run_waits_outside_any_process_until_resume_due() {
    let d = Dir::new();
    d.script("print(run_plugin(\"ledger\", \"a\", 0))\nlet v = wait_signal(\"approve\")\nprint(v)\nsleep 1s\nprint(run_plugin(\"ledger\", \"b\", 0))\n");
    let left = d.aether(&["run", "w.aether", "--id", "dt", "--detach-waits"]);
    assert_eq!(left.code, 0, "{}", left.stderr);
    assert!(left.stderr.contains("is waiting"), "{}", left.stderr);
    assert_eq!(d.status("dt")["status"], "waiting");
    assert_eq!(
        d.status("dt")["waiting_for"],
        serde_json::json!(["approve"])
    );
    let shown = d.aether(&["runs", "show", "dt"]);
    assert!(
        shown.stdout.contains("waits    for signal `approve`"),
        "{}",
        shown.stdout
    );
    let early = d.aether(&["runs", "resume", "--due"]);
    assert_eq!(early.code, 0, "{}", early.stderr);
    assert!(
        early.stderr.contains("resumed 0 run(s)"),
        "{}",
        early.stderr
    );
    assert_eq!(
        d.aether(&["runs", "signal", "dt", "approve", "--data", "7"])
            .code,
        0
    );
    // The signal makes it due; resumed, it takes the signal (its 1 s sleep is short enough
    // to stay in the process).
    let second = d.aether(&["runs", "resume", "--due"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("resumed 1 run(s)"),
        "{}",
        second.stderr
    );
    assert_eq!(second.stdout, "did a\n7\ndid b\n");
    assert_eq!(d.status("dt")["status"], "succeeded");
    assert_eq!(d.ledger(), "a\nb\n");
}

#[test]
fn the_worker_resumes_an_interrupted_run_once() {
    let d = Dir::new();
    d.script("print(run_plugin(\"ledger\", \"a\", 0))\nsleep 3s\nprint(run_plugin(\"ledger\", \"b\", 0))\n");
    d.kill_at("wk", 1, Duration::from_millis(500));
    assert_eq!(d.status("wk")["status"], "running");
    let out = d.aether(&["worker", "--once"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("worker: resuming run `wk`"),
        "{}",
        out.stderr
    );
    assert_eq!(d.status("wk")["status"], "succeeded");
    assert_eq!(d.ledger(), "a\nb\n");
    let idle = d.aether(&["worker", "--once"]);
    assert_eq!(idle.code, 0, "{}", idle.stderr);
    assert!(!idle.stderr.contains("resuming"), "{}", idle.stderr);
}

#[test]
fn the_worker_stops_on_sigterm() {
    let d = Dir::new();
    d.script("print(1)\n");
    assert_eq!(d.aether(&["run", "w.aether", "--durable"]).code, 0);
    let child = d
        .cmd(&["worker", "--poll", "100ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker");
    std::thread::sleep(Duration::from_millis(600));
    let pid = child.id().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let (code, _, _) = finish(child);
    assert_eq!(code, 0, "the worker exits 0 on SIGTERM");
}

#[test]
fn a_long_sleep_leaves_the_process_and_comes_due_at_its_deadline() {
    let d = Dir::new();
    // Past the 5-minute threshold a durable sleep leaves on its own.
    d.script("print(run_plugin(\"ledger\", \"a\", 0))\nsleep 10m\nprint(\"late\")\n");
    let left = d.aether(&["run", "w.aether", "--id", "long"]);
    assert_eq!(left.code, 0, "{}", left.stderr);
    assert!(left.stderr.contains("is waiting"), "{}", left.stderr);
    let show = d.status("long");
    assert_eq!(show["status"], "waiting");
    let due = d.aether(&["runs", "resume", "--due"]);
    assert!(
        due.stderr.contains("resumed 0 run(s)"),
        "not due yet: {}",
        due.stderr
    );
    assert_eq!(d.ledger(), "a\n");
}

#[test]
fn a_waiting_run_past_its_wake_time_is_stuck() {
    let d = Dir::new();
    d.script("sleep 1s\nprint(\"woke\")\n");
    let left = d.aether(&["run", "w.aether", "--id", "late", "--detach-waits"]);
    assert_eq!(left.code, 0, "{}", left.stderr);
    assert_eq!(d.status("late")["status"], "waiting");
    assert!(
        d.status("late")["wake_at"].is_f64(),
        "the wake time is shown"
    );
    assert!(d
        .aether(&["runs", "show", "late"])
        .stdout
        .contains("  wakes    20"));
    // Not stuck while its wake time is ahead.
    let ahead = d.aether(&["runs", "stuck", "--json"]);
    assert_eq!(ahead.stdout, "[]\n", "{}", ahead.stderr);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let stuck = d.aether(&["runs", "stuck"]);
    assert_eq!(stuck.code, 0, "{}", stuck.stderr);
    assert!(
        stuck.stdout.contains("late") && stuck.stdout.contains("wake time passed"),
        "{}",
        stuck.stdout
    );
    let resumed = d.aether(&["runs", "resume", "--due"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(d.aether(&["runs", "stuck", "--json"]).stdout, "[]\n");
}

/// Two fibers wait on different signals, each with a deadline an hour away (so a resumed
/// run leaves the process again by itself).
const TWO_WAITS: &str = "action w(name):\n    return wait_signal(name, timeout=1h)\nparallel:\n    a: w(\"approve\")\n    b: w(\"rollback\")\nawait a, b\nprint(a, b)\n";

#[test]
fn a_waiting_run_records_every_awaited_signal_and_any_of_them_makes_it_due() {
    let d = Dir::new();
    d.script(TWO_WAITS);
    let left = d.aether(&[
        "run",
        "w.aether",
        "--id",
        "two",
        "--detach-waits",
        "--json-status",
    ]);
    assert_eq!(left.code, 0, "parked, not failed: {}", left.stderr);
    assert!(
        left.stderr
            .contains("waits for signals `approve`, `rollback`"),
        "{}",
        left.stderr
    );
    // The status line tells a parked run from a finished one.
    let line: serde_json::Value =
        serde_json::from_str(left.stdout.trim()).expect("a JSON status line");
    assert_eq!(line["ok"], true, "{line}");
    assert_eq!(line["run_id"], "two", "{line}");
    assert_eq!(line["status"], "waiting", "{line}");
    assert_eq!(
        line["waiting_for"],
        serde_json::json!(["approve", "rollback"]),
        "{line}"
    );
    assert!(
        line["wake_at"].is_f64(),
        "the deadlines an hour away: {line}"
    );
    let shown = d.status("two");
    assert_eq!(
        shown["waiting_for"],
        serde_json::json!(["approve", "rollback"])
    );
    let text = d.aether(&["runs", "show", "two"]).stdout;
    assert!(
        text.contains("waits    for signal `approve`")
            && text.contains("waits    for signal `rollback`"),
        "{text}"
    );
    let listed = d.aether(&["runs", "list"]).stdout;
    assert!(
        listed.contains("waits for signals `approve`, `rollback`"),
        "{listed}"
    );
    let listed = d.aether(&["runs", "list", "--json"]).stdout;
    assert!(
        listed.contains(r#""waiting_for":["approve","rollback"]"#),
        "{listed}"
    );
    assert_eq!(d.aether(&["runs", "stuck", "--json"]).stdout, "[]\n");
    // The second signal alone makes it due (before, only the last wait's name was kept).
    assert_eq!(
        d.aether(&["runs", "signal", "two", "rollback", "--data", "2"])
            .code,
        0
    );
    let stuck = d.aether(&["runs", "stuck"]).stdout;
    assert!(
        stuck.contains("signal `rollback` it waits for arrived"),
        "{stuck}"
    );
    let first = d.aether(&["runs", "resume", "--due"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stderr.contains("resumed 1 run(s)"),
        "{}",
        first.stderr
    );
    // It took `rollback` and waits for `approve` only, out of the process again.
    let shown = d.status("two");
    assert_eq!(shown["status"], "waiting", "{shown}");
    assert_eq!(
        shown["waiting_for"],
        serde_json::json!(["approve"]),
        "{shown}"
    );
    assert_eq!(
        d.aether(&["runs", "signal", "two", "approve", "--data", "1"])
            .code,
        0
    );
    let second = d.aether(&["runs", "resume", "--due"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout, "1 2\n");
    let done = d.status("two");
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["waiting_for"], serde_json::json!([]));
}

#[test]
fn the_status_line_of_a_finished_durable_run_says_so() {
    let d = Dir::new();
    d.script("print(1)\n");
    let out = d.aether(&["run", "w.aether", "--id", "fin", "--json-status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let line: serde_json::Value =
        serde_json::from_str(out.stdout.lines().last().expect("status line")).expect("json");
    assert_eq!(line["status"], "succeeded", "{line}");
    assert!(line.get("waiting_for").is_none(), "{line}");
}

#[test]
fn a_read_is_replayed_from_the_journal_after_memory_changed() {
    let d = Dir::new();
    // The count read before the crash decides the branch: a replay that read memory afresh
    // would see the record stored meanwhile and take the other one.
    d.script("let n = memory.count(tags=[\"x\"])\nprint(run_plugin(\"ledger\", \"a\", 0))\nsleep 3s\nif n == 0:\n    print(\"first\")\nelse:\n    print(\"again\")\nprint(n)\n");
    d.kill_at("rd", 1, Duration::from_millis(500));
    std::fs::write(
        d.path().join("other.aether"),
        format!(
            "{}memory.store(\"meanwhile\", tags=[\"x\"])\n",
            durable_support::HEAD
        ),
    )
    .expect("script");
    let other = d.aether(&["run", "other.aether"]);
    assert_eq!(other.code, 0, "{}", other.stderr);
    let out = d.aether(&["runs", "resume", "rd"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout, "did a\nfirst\n0\n",
        "the recorded count, not today's 1"
    );
    let journal = d.aether(&["runs", "show", "rd", "--journal"]).stdout;
    assert!(
        journal.contains("0#1 outcome  memory.count {\"ok\":0}"),
        "{journal}"
    );
    assert_eq!(d.ledger(), "a\n");
}

#[test]
fn a_transaction_rolled_back_in_a_retried_step_replays_as_it_ran() {
    let d = Dir::new();
    // Attempt 1's block stores, reads the clock and rolls back (too early); attempt 2, after
    // the 1 s backoff, commits. Killed during `nap`, the resumed run replays attempt 1's
    // rollback from the journal (the same clock, the same failure) and attempt 2's commit.
    d.script("action tx(t0):\n    transaction:\n        memory.store(\"t\", tags=[\"y\"])\n        assert now() - t0 > 0.5, \"too early\"\n    return 1\naction nap():\n    sleep 3s\n    print(memory.count(tags=[\"y\"]))\n    return 2\nlet t0 = now()\nprint(run_plugin(\"ledger\", \"a\", 0))\nworkflow w:\n    steps:\n        - tx(t0) as r retry=1 backoff=1s\n        - nap as z\n");
    d.kill_at("txr", 1, Duration::from_millis(2000));
    let out = d.aether(&["runs", "resume", "txr"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "did a\n1\n", "the store is in memory once");
    assert_eq!(d.status("txr")["status"], "succeeded");
    assert_eq!(d.ledger(), "a\n");
    let journal = d.aether(&["runs", "show", "txr", "--journal"]).stdout;
    assert!(journal.contains("backoff"), "{journal}");
}

#[test]
fn a_read_inside_a_rolled_back_transaction_is_replayed() {
    let d = Dir::new();
    // Each attempt stores an `x`; attempt 1's block counts one and rolls back, attempt 2's
    // counts two and commits. A replay that counted afresh would see two in attempt 1.
    d.script("action tx():\n    memory.store(str(now()), tags=[\"x\"])\n    transaction:\n        memory.store(\"t\", tags=[\"y\"])\n        assert memory.count(tags=[\"x\"]) > 1, \"one x\"\n    return 1\naction nap():\n    print(run_plugin(\"ledger\", \"n\", 0))\n    sleep 3s\n    print(memory.count(tags=[\"x\"]), memory.count(tags=[\"y\"]))\n    return 2\nworkflow w:\n    steps:\n        - tx as r retry=1 backoff=1s\n        - nap as z\n");
    d.kill_at("txc", 1, Duration::from_millis(500));
    let out = d.aether(&["runs", "resume", "txc"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "did n\n2 1\n");
    assert_eq!(d.ledger(), "n\n");
}
