//! End-to-end tests of `transaction:` blocks in durable runs (docs/durable.md,
//! "Transactions"): a block rolled back for a reason the journal cannot reproduce by itself
//! (its time limit) replays as it ran; SIGSTOP, SIGKILL and resume through the real binary.

mod durable_support;

use std::process::Command;
use std::time::{Duration, Instant};

use durable_support::Dir;

/// Attempt 1's block is stopped (SIGSTOP) past the 4 s transaction limit; attempt 2 runs
/// the same block in 1.5 s and commits; `after` runs once the block committed.
const SLOW_BLOCK: &str = "action tx():\n    transaction:\n        memory.store(\"t\", tags=[\"y\"])\n        let t1 = now()\n        let j = 0\n        while now() - t1 < 1.5:\n            j = 0\n            while j < 20000:\n                j = j + 1\n    memory.store(\"after\", tags=[\"a\"])\n    return 1\naction nap():\n    print(run_plugin(\"ledger\", \"n\", 0))\n    sleep 3s\n    print(memory.count(tags=[\"y\"]), memory.count(tags=[\"a\"]))\n    return 2\nworkflow w:\n    steps:\n        - tx as r retry=1 backoff=1s\n        - nap as z\n";

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// Wait (at most 60 s) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(60), "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_block_past_its_time_limit_replays_as_a_failed_attempt() {
    let d = Dir::new();
    d.script(SLOW_BLOCK);
    let mut child = d.spawn(&["run", "w.aether", "--id", "txl"]);
    // The note appears once attempt 1's block holds the write lock: stop the run there
    // past the limit; continued, the block fails with TIMEOUT_ERROR and rolls back.
    let note = d.state().join("aether.db-tx");
    wait_until("attempt 1 opens its block", || note.exists());
    signal(child.id(), "-STOP");
    std::thread::sleep(Duration::from_millis(4500));
    signal(child.id(), "-CONT");
    // Killed in `nap`, after attempt 2 committed and `after` ran.
    wait_until("nap starts", || d.ledger().lines().count() >= 1);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    // Replayed, attempt 1's block runs fast, yet fails where it failed (it never commits,
    // and `after` does not run in attempt 1): no NONDETERMINISM_ERROR, nothing done twice.
    let out = d.aether(&["runs", "resume", "txl"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "did n\n1 1\n", "{}", out.stderr);
    assert_eq!(d.status("txl")["status"], "succeeded");
    assert_eq!(d.ledger(), "n\n");
    // Why attempt 1's block rolled back is in the journal.
    let journal = d.aether(&["runs", "show", "txl", "--journal"]).stdout;
    assert!(journal.contains("transaction"), "{journal}");
    assert!(journal.contains("TIMEOUT_ERROR"), "{journal}");
}

/// Attempt 1's block stores 300 kB (chosen by the clock: only in the first second); the
/// run's file size limit leaves no room for it in the WAL, so its `COMMIT` fails (disk I/O
/// error) and SQLite rolls it back. Attempt 2 stores a few bytes and commits.
const BIG_BLOCK: &str = "action tx(t0):\n    let big = \"abcdefgh \"\n    if now() - t0 < 1:\n        while len(big) < 300000:\n            big = big + big\n    transaction:\n        memory.store(big, tags=[\"y\"])\n    return 1\naction nap():\n    print(run_plugin(\"ledger\", \"n\", 0))\n    sleep 3s\n    print(memory.count(tags=[\"y\"]))\n    return 2\nlet t0 = now()\nworkflow w:\n    steps:\n        - tx(t0) as r retry=1 backoff=2s\n        - nap as z\n";

#[test]
fn a_block_whose_commit_failed_replays_as_a_failed_attempt() {
    // A second process cannot make a COMMIT fail: in WAL mode the commit takes no lock
    // another process can hold (the write lock was taken at BEGIN IMMEDIATE). A file size
    // limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the WAL write of the commit fail.
    let d = Dir::new();
    d.script("memory.store(\"setup\", tags=[\"s\"])\n");
    let out = d.aether(&["run", "w.aether"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    d.script(BIG_BLOCK);
    let bin = assert_cmd::cargo::cargo_bin("aether");
    let limited = format!(
        "trap '' XFSZ; exec prlimit --fsize=350000 '{}' run w.aether --id txc --state-dir '{}'",
        bin.display(),
        d.state().display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &limited])
        .current_dir(d.path())
        .env("NO_COLOR", "1")
        .env("AETHERRA_QUIET", "1")
        .env("LEDGER", d.path().join("ledger"))
        .env_remove("AETHERRA_PROFILE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sh starts");
    wait_until("nap starts", || d.ledger().lines().count() >= 1);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    // Replayed without the limit, attempt 1's block would commit; it fails where it failed.
    let out = d.aether(&["runs", "resume", "txc"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "did n\n1\n", "{}", out.stderr);
    assert_eq!(d.status("txc")["status"], "succeeded");
    assert_eq!(d.ledger(), "n\n");
    let journal = d.aether(&["runs", "show", "txc", "--journal"]).stdout;
    assert!(
        journal.contains("the transaction could not commit"),
        "{journal}"
    );
}
