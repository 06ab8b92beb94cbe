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

/// `runs show ID --journal --json` and `runs list --json`: the database as the CLI sees it.
fn snapshot(d: &Dir, id: &str) -> String {
    let show = d.aether(&["runs", "show", id, "--journal", "--json"]);
    format!(
        "{}{}",
        show.stdout,
        d.aether(&["runs", "list", "--json"]).stdout
    )
}

#[test]
fn resolve_settles_an_indeterminate_entry_and_refuses_bad_input() {
    let d = Dir::new();
    d.script(THREE);
    d.kill_at("rs", 2, Duration::from_millis(300));
    assert_eq!(d.aether(&["runs", "resume", "rs"]).code, 21);
    assert_eq!(d.status("rs")["status"], "needs_attention");
    let before = snapshot(&d, "rs");
    for (args, code, needle) in [
        (
            vec!["0:2", "--succeeded", "\"x\""],
            1,
            "is not indeterminate",
        ),
        (vec!["0:9", "--retry"], 1, "no journal entry 0:9"),
        (vec!["0:3", "--succeeded", "{bad"], 2, "--succeeded takes"),
        (vec!["zz", "--retry"], 2, "is not a journal entry"),
        (vec!["0:3"], 2, "--succeeded"),
    ] {
        let mut all = vec!["runs", "resolve", "rs"];
        all.extend(args.iter());
        let out = d.aether(&all);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    let unknown = d.aether(&["runs", "resolve", "nope", "0:3", "--retry"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert_eq!(snapshot(&d, "rs"), before, "refusals change nothing");
    let ok = d.aether(&["runs", "resolve", "rs", "0#3", "--succeeded", "\"by hand\""]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let again = d.aether(&["runs", "resolve", "rs", "0:3", "--retry"]);
    assert_eq!(
        again.code, 1,
        "a settled entry is not indeterminate any more"
    );
    let out = d.aether(&["runs", "resume", "rs"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "did a\nby hand\ndid c\n1\ndone\n");
    assert_eq!(d.ledger(), "a\nb\nc\n", "b was not run again");
    assert_eq!(d.status("rs")["status"], "succeeded");
}

#[test]
fn resolve_retry_and_failed_continue_the_run() {
    let d = Dir::new();
    d.script(THREE);
    d.kill_at("rr", 2, Duration::from_millis(300));
    let ok = d.aether(&["runs", "resolve", "rr", "0:3", "--retry"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let out = d.aether(&["runs", "resume", "rr"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(d.ledger(), "a\nb\nb\nc\n", "the operator asked for b again");

    let f = Dir::new();
    f.script(THREE);
    f.kill_at("rf", 2, Duration::from_millis(300));
    let ok = f.aether(&[
        "runs",
        "resolve",
        "rf",
        "0:3",
        "--failed",
        "the disk was full",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let out = f.aether(&["runs", "resume", "rf"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("the disk was full"), "{}", out.stderr);
    assert_eq!(f.status("rf")["status"], "failed");
    assert_eq!(f.ledger(), "a\nb\n");
}

#[test]
fn an_idempotent_plugin_is_retried_with_the_same_key() {
    let d = Dir::new();
    d.script("print(run_plugin(\"keyed\", 0))\nprint(run_plugin(\"keyed\", 2))\nprint(run_plugin(\"keyed\", 0))\n");
    d.kill_at("idem", 2, Duration::from_millis(300));
    assert_eq!(d.ledger(), "idem:0:1\nidem:0:2\n");
    let out = d.aether(&["runs", "resume", "idem"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout, "key idem:0:1\nkey idem:0:2\nkey idem:0:3\n",
        "{}",
        out.stderr
    );
    assert_eq!(d.ledger(), "idem:0:1\nidem:0:2\nidem:0:2\nidem:0:3\n");
    assert_eq!(d.status("idem")["status"], "succeeded");
    // An ordinary run sends no key.
    d.script("print(run_plugin(\"keyed\", 0))\n");
    assert_eq!(d.aether(&["run", "w.aether"]).code, 0);
    assert!(d.ledger().ends_with("\nnone\n"), "{}", d.ledger());
}

#[test]
fn export_and_verify_reject_tampered_removed_and_reordered_lines() {
    let d = Dir::new();
    d.script("print(run_plugin(\"ledger\", \"a\", 0))\nprint(run_plugin(\"ledger\", \"b\", 0))\nmemory.store(\"x\")\n");
    assert_eq!(d.aether(&["run", "w.aether", "--id", "ex"]).code, 0);
    let out = d.aether(&["runs", "export", "ex", "--out", "ex.jsonl"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(d.path().join("ex.jsonl")).expect("export");
    assert_eq!(text.lines().count(), 5, "{text}");
    let stdout = d.aether(&["runs", "export", "ex", "--out", "-"]);
    assert_eq!(stdout.stdout, text);
    let ok = d.aether(&["runs", "verify", "ex.jsonl"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stdout.contains("3 journal entries, hash chain intact"),
        "{}",
        ok.stdout
    );
    let lines: Vec<&str> = text.lines().collect();
    let write = |name: &str, ls: &[&str]| {
        std::fs::write(d.path().join(name), ls.join("\n") + "\n").expect("write");
    };
    let tampered = lines[2].replace("did b", "did B");
    write(
        "t.jsonl",
        &[lines[0], lines[1], &tampered, lines[3], lines[4]],
    );
    write("r.jsonl", &[lines[0], lines[1], lines[3], lines[4]]);
    write(
        "o.jsonl",
        &[lines[0], lines[2], lines[1], lines[3], lines[4]],
    );
    for (file, needle) in [
        ("t.jsonl", "line 3: altered"),
        ("r.jsonl", "line 3: out of place"),
        ("o.jsonl", "line 2: out of place"),
    ] {
        let out = d.aether(&["runs", "verify", file]);
        assert_eq!(out.code, 1, "{file}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{file}: {}", out.stderr);
    }
    // Signed with an `aether keygen` key; checked against its public key.
    let keygen = std::process::Command::new(assert_cmd::cargo::cargo_bin("aether"))
        .current_dir(d.path())
        .args(["keygen", "--out", "keys", "--name", "audit"])
        .output()
        .expect("keygen");
    assert!(keygen.status.success());
    let signed = d.aether(&[
        "runs",
        "export",
        "ex",
        "--out",
        "s.jsonl",
        "--key",
        "keys/audit.key",
    ]);
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let ok = d.aether(&["runs", "verify", "s.jsonl", "--pubkey", "keys/audit.pub"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("signed by trusted key"), "{}", ok.stdout);
    let s = std::fs::read_to_string(d.path().join("s.jsonl")).expect("signed");
    // Re-chained by hand after an edit: the chain holds, the signature does not.
    let forged = s.replace("\"ex\"", "\"ey\"");
    std::fs::write(d.path().join("f.jsonl"), forged).expect("write");
    let bad = d.aether(&["runs", "verify", "f.jsonl", "--pubkey", "keys/audit.pub"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("line"), "{}", bad.stderr);
    let unsigned = d.aether(&["runs", "verify", "ex.jsonl", "--pubkey", "keys/audit.pub"]);
    assert_eq!(unsigned.code, 1, "{}", unsigned.stderr);
}

#[test]
fn stuck_prune_and_status_report_runs() {
    let d = Dir::new();
    d.script("print(run_plugin(\"ledger\", \"a\", 0))\n");
    assert_eq!(d.aether(&["run", "w.aether", "--id", "old"]).code, 0);
    d.script("print(run_plugin(\"ledger\", \"b\", 0))\nsleep 5s\n");
    d.kill_at("dead", 2, Duration::from_millis(100));
    let stuck = d.aether(&["runs", "stuck", "--json"]);
    assert_eq!(stuck.code, 0, "{}", stuck.stderr);
    let rows: serde_json::Value = serde_json::from_str(&stuck.stdout).expect("json");
    let ids: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["dead"], "{}", stuck.stdout);
    assert!(
        stuck.stdout.contains("is gone or its lease expired"),
        "{}",
        stuck.stdout
    );
    let young = d.aether(&["runs", "stuck", "--older-than", "1h", "--json"]);
    assert_eq!(young.stdout, "[]\n");
    assert_eq!(d.aether(&["runs", "stuck", "--older-than", "soon"]).code, 2);
    let status = d.aether(&["status", "--json"]);
    let s: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(s["durable"]["by_status"]["running"], 1, "{}", status.stdout);
    assert_eq!(
        s["durable"]["by_status"]["succeeded"], 1,
        "{}",
        status.stdout
    );
    // `old`: its plugin call; `dead`: its plugin call and its sleep's deadline.
    assert_eq!(s["durable"]["journal_entries"], 3, "{}", status.stdout);
    let prom = d.aether(&["status", "--prometheus"]);
    assert!(
        prom.stdout
            .contains("aetherra_durable_runs{status=\"running\"} 1"),
        "{}",
        prom.stdout
    );
    let kept = d.aether(&["runs", "prune", "--older-than", "1h"]);
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    assert_eq!(kept.stdout, "");
    let pruned = d.aether(&["runs", "prune", "--older-than", "0s"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    assert_eq!(
        pruned.stdout,
        "removed old (succeeded, 1 journal entries)\n"
    );
    let left = d.aether(&["runs", "list", "--json"]);
    assert!(
        left.stdout.contains("\"dead\"") && !left.stdout.contains("\"old\""),
        "{}",
        left.stdout
    );
    assert_eq!(
        d.aether(&["runs", "prune"]).code,
        2,
        "--older-than is required"
    );
}

#[test]
fn a_corrupted_journal_is_refused_and_changes_nothing() {
    let d = Dir::new();
    d.script(THREE);
    d.kill_at("cj", 3, Duration::from_millis(800));
    let db = d.state().join("aether.db");
    let edit = |sql: &str| {
        let c = rusqlite::Connection::open(&db).expect("db");
        c.execute_batch(sql).expect("edit");
    };
    edit("UPDATE journal SET result = 'garbage{' WHERE run_id = 'cj' AND seq = 2");
    let before = snapshot(&d, "cj");
    let out = d.aether(&["runs", "resume", "cj"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("journal entry 0#2: corrupted result"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(snapshot(&d, "cj"), before, "the database is unchanged");
    edit("UPDATE journal SET result = '{\"ok\": \"did a\"}' WHERE run_id = 'cj' AND seq = 2; DELETE FROM journal WHERE run_id = 'cj' AND seq = 3");
    let before = snapshot(&d, "cj");
    let out = d.aether(&["runs", "resume", "cj"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("a row is missing"), "{}", out.stderr);
    assert_eq!(snapshot(&d, "cj"), before, "the database is unchanged");
    assert_eq!(d.ledger(), "a\nb\nc\n", "nothing ran again");
}
