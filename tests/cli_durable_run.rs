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
