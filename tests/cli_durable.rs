//! End-to-end tests of durable runs (docs/durable.md) with the real binary: SIGKILL at known
//! points through a plugin that appends to a ledger file, then `aether runs resume`.

mod durable_support;

use std::time::Duration;

use durable_support::Dir;

const THREE: &str = "memory.store(\"note one\", tags=[\"d\"])\nprint(run_plugin(\"ledger\", \"a\", 0))\nprint(run_plugin(\"ledger\", \"b\", 3))\nprint(run_plugin(\"ledger\", \"c\", 0))\nsleep 3s\nprint(memory.count(tags=[\"d\"]))\nprint(\"done\")\n";

#[test]
fn a_kill_between_intent_and_outcome_is_indeterminate_and_never_repeated() {
    let d = Dir::new();
    d.script(THREE);
    d.kill_at("k1", 2, Duration::from_millis(300));
    assert_eq!(d.ledger(), "a\nb\n");
    assert_eq!(d.status("k1")["status"], "running");
    let out = d.aether(&["runs", "resume", "k1"]);
    assert_eq!(out.code, 21, "{}", out.stderr);
    assert!(out.stderr.contains("IndeterminateError"), "{}", out.stderr);
    assert!(out.stderr.contains("w.aether:7:7"), "{}", out.stderr);
    assert_eq!(d.ledger(), "a\nb\n", "no effect ran twice");
    assert_eq!(d.status("k1")["status"], "needs_attention");
    let journal = d.aether(&["runs", "show", "k1", "--journal"]);
    assert!(
        journal
            .stdout
            .contains("0#3 intent   run_plugin (no outcome: indeterminate)"),
        "{}",
        journal.stdout
    );
}

#[test]
fn a_kill_after_the_outcome_resumes_without_repeating_effects() {
    let d = Dir::new();
    d.script(THREE);
    d.kill_at("k2", 3, Duration::from_millis(800));
    assert_eq!(d.ledger(), "a\nb\nc\n");
    let out = d.aether(&["runs", "resume", "k2", "--json-status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Replayed calls return their recorded results; the memory write happened once.
    assert!(
        out.stdout
            .starts_with("did a\ndid b\ndid c\n1\ndone\n{\"ok\":true"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\"run_id\":\"k2\""), "{}", out.stdout);
    assert_eq!(d.ledger(), "a\nb\nc\n", "no effect ran twice");
    assert_eq!(d.status("k2")["status"], "succeeded");
}

#[test]
fn the_same_id_attaches_and_other_args_or_scripts_are_refused() {
    let d = Dir::new();
    d.script("print(run_plugin(\"ledger\", \"a\", 0))\nprint(args.who)\n");
    let first = d.aether(&["run", "w.aether", "--id", "job-1", "--arg", "who=x"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout, "did a\nx\n");
    let again = d.aether(&["run", "w.aether", "--id", "job-1", "--arg", "who=x"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("run `job-1` already finished: succeeded"),
        "{}",
        again.stderr
    );
    assert_eq!(d.ledger(), "a\n", "a finished run is not run again");
    let other = d.aether(&["run", "w.aether", "--id", "job-1", "--arg", "who=y"]);
    assert_eq!(other.code, 2);
    assert!(other.stderr.contains("other arguments"), "{}", other.stderr);
    d.script("print(run_plugin(\"ledger\", \"A\", 0))\nprint(args.who)\n");
    let changed = d.aether(&["run", "w.aether", "--id", "job-1", "--arg", "who=x"]);
    assert_eq!(changed.code, 2);
    assert!(
        changed.stderr.contains("changed since the run started"),
        "{}",
        changed.stderr
    );
    assert_eq!(d.ledger(), "a\n");
}

#[test]
fn a_divergent_replay_is_a_nondeterminism_error() {
    let d = Dir::new();
    d.script("print(run_plugin(\"ledger\", \"a\", 0))\nprint(run_plugin(\"ledger\", \"b\", 3))\n");
    d.kill_at("nd", 2, Duration::from_millis(200));
    d.script("print(run_plugin(\"ledger\", \"z\", 0))\nprint(run_plugin(\"ledger\", \"b\", 3))\n");
    let refused = d.aether(&["runs", "resume", "nd"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let out = d.aether(&["runs", "resume", "nd", "--allow-changed", "--json-status"]);
    assert_eq!(out.code, 28, "{}", out.stderr);
    assert!(
        out.stderr.contains("error[NONDETERMINISM_ERROR]"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("w.aether:5:7"), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("\"code_name\":\"NONDETERMINISM_ERROR\""),
        "{}",
        out.stdout
    );
    assert_eq!(d.ledger(), "a\nb\n");
}

#[test]
fn two_racing_resumes_exactly_one_wins() {
    let d = Dir::new();
    d.script("print(run_plugin(\"ledger\", \"a\", 0))\nsleep 2s\nprint(run_plugin(\"ledger\", \"b\", 0))\n");
    d.kill_at("race", 1, Duration::from_millis(500));
    let a = d.spawn(&["runs", "resume", "race"]);
    let b = d.spawn(&["runs", "resume", "race"]);
    let codes = [
        a.wait_with_output().expect("a").status.code(),
        b.wait_with_output().expect("b").status.code(),
    ];
    let wins = codes.iter().filter(|c| **c == Some(0)).count();
    assert_eq!(wins, 1, "{codes:?}");
    assert!(codes.contains(&Some(1)), "{codes:?}");
    assert_eq!(d.ledger(), "a\nb\n");
    assert_eq!(d.status("race")["status"], "succeeded");
}

#[test]
fn cancel_ends_an_interrupted_run() {
    let d = Dir::new();
    d.script("print(run_plugin(\"ledger\", \"a\", 0))\nsleep 5s\nprint(run_plugin(\"ledger\", \"b\", 0))\n");
    d.kill_at("c1", 1, Duration::from_millis(300));
    let out = d.aether(&["runs", "cancel", "c1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(d.status("c1")["status"], "cancelled");
    let resume = d.aether(&["runs", "resume", "c1"]);
    assert_eq!(resume.code, 1);
    assert!(
        resume.stderr.contains("already finished: cancelled"),
        "{}",
        resume.stderr
    );
    let again = d.aether(&["runs", "cancel", "c1"]);
    assert_eq!(again.code, 1);
    assert_eq!(d.ledger(), "a\n");
    let list = d.aether(&["runs", "list", "--status", "cancelled", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let d = Dir::new();
    d.script("print(run_plugin(\"ledger\", \"a\", 0))\n");
    let none = d.aether(&["runs", "list"]);
    assert_eq!(none.code, 2);
    assert!(none.stderr.contains("no state database"), "{}", none.stderr);
    assert_eq!(d.aether(&["run", "w.aether", "--id", "ok-1"]).code, 0);
    let before = d.aether(&["runs", "list", "--json"]).stdout;
    for (args, needle) in [
        (vec!["runs", "show", "../etc"], "is not a run id"),
        (vec!["runs", "show", "nope"], "no run `nope`"),
        (vec!["runs", "resume", "nope"], "no run `nope`"),
        (vec!["runs", "cancel", "a b"], "is not a run id"),
        (vec!["runs", "list", "--status", "done"], "is not a status"),
        (vec!["run", "w.aether", "--id", "x/y"], "is not a run id"),
    ] {
        let out = d.aether(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    assert_eq!(d.aether(&["runs", "list", "--json"]).stdout, before);
    assert_eq!(d.ledger(), "a\n");
}

#[test]
fn an_ordinary_run_keeps_no_journal() {
    let d = Dir::new();
    d.script("memory.store(\"x\")\nprint(run_plugin(\"ledger\", \"a\", 0))\n");
    assert_eq!(d.aether(&["run", "w.aether"]).code, 0);
    let list = d.aether(&["runs", "list", "--json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert_eq!(list.stdout, "[]\n");
}
