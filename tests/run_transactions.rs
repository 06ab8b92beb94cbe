//! End-to-end tests of `transaction:` against the state database's write lock (issue 12):
//! two real `aether run` processes on one state directory, waits refused inside a
//! transaction, the transaction time limit, and the message of a run that finds it busy.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Holds the write lock until the 4 s transaction limit stops it (the loop alone would
/// run for 60 s).
const HOLD: &str = r#"goal: "hold the state database"
let t0 = now()
let i = 0
transaction:
    memory.store("held", tags=["hold"])
    while now() - t0 < 60:
        i = i + 1
print("never")
"#;

/// Writes one record in a transaction of its own.
const WRITE: &str = r#"goal: "write after the holder"
transaction:
    memory.store("second", tags=["write"])
print("stored")
"#;

fn aether(dir: &Path, file: &str, src: &str) -> Command {
    std::fs::write(dir.join(file), src).expect("write script");
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("aether"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("AETHERRA_PROFILE")
        .env_remove("AETHERRA_QUIET")
        .args(["run", file, "--state-dir", "state"]);
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What `print(memory.COUNTS)` prints in a run of its own on `dir`'s state.
fn memory_count(dir: &Path, counts: &str) -> String {
    let src = format!("goal: \"count\"\nprint(memory.{counts})\n");
    let out = aether(dir, "count.aether", &src)
        .output()
        .expect("aether runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// A holding run started in the background, stopped and killed if the test ends early.
struct Holder(Child);

impl Holder {
    fn start(dir: &Path) -> Holder {
        let child = aether(dir, "hold.aether", HOLD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("aether starts");
        let holder = Holder(child);
        // The note appears once the transaction holds the write lock.
        let note: PathBuf = dir.join("state").join("aether.db-tx");
        let start = Instant::now();
        while !note.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the holder never opened its transaction"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        holder
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {sig} failed");
    }

    fn wait(mut self) -> Output {
        let child = std::mem::replace(
            &mut self.0,
            Command::new("true").spawn().expect("true starts"),
        );
        child.wait_with_output().expect("the holder ends")
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_transaction_past_its_limit_is_rolled_back_and_the_waiting_run_gets_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let holder = Holder::start(dir.path());
    // Started while the holder has the lock: it waits (up to 5 s) and gets in when the
    // holder's transaction reaches its 4 s limit and rolls back.
    let second = aether(dir.path(), "write.aether", WRITE)
        .output()
        .expect("aether runs");
    let first = holder.wait();

    let (out, err) = (text(&first.stdout), text(&first.stderr));
    assert_eq!(
        first.status.code(),
        Some(23),
        "stdout: {out}\nstderr: {err}"
    );
    assert!(
        err.contains("error[TIMEOUT_ERROR]: the transaction was open longer than 4s")
            && err.contains("it is rolled back"),
        "{err}"
    );
    assert_eq!(out, "");

    let (out, err) = (text(&second.stdout), text(&second.stderr));
    assert_eq!(
        second.status.code(),
        Some(0),
        "stdout: {out}\nstderr: {err}"
    );
    assert_eq!(out, "stored\n");

    // The holder's write was rolled back; the second run's stands; no note is left.
    let count = aether(
        dir.path(),
        "count.aether",
        "goal: \"count\"\nprint(memory.count(tags=[\"hold\"]), memory.count(tags=[\"write\"]))\n",
    )
    .output()
    .expect("aether runs");
    assert_eq!(text(&count.stdout), "0 1\n", "{}", text(&count.stderr));
    assert!(!dir.path().join("state/aether.db-tx").exists());
}

#[test]
fn a_run_that_finds_the_database_busy_says_who_holds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let holder = Holder::start(dir.path());
    // A stopped holder cannot reach its limit: the lock stays held past the busy timeout.
    holder.signal("-STOP");
    let started = Instant::now();
    let second = aether(dir.path(), "write.aether", WRITE)
        .output()
        .expect("aether runs");
    let waited = started.elapsed();
    holder.signal("-CONT");
    let pid = holder.0.id();
    let first = holder.wait();

    let (out, err) = (text(&second.stdout), text(&second.stderr));
    assert_eq!(
        second.status.code(),
        Some(23),
        "stdout: {out}\nstderr: {err}"
    );
    let expected = format!(
        "error[TIMEOUT_ERROR]: the state database is busy: another run holds a transaction on it (pid {pid}, `"
    );
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("hold.aether"), "{err}");
    assert!(err.contains("this run waited 5s for it"), "{err}");
    assert!(!err.contains("database is locked"), "{err}");
    assert!(waited >= Duration::from_secs(5), "gave up after {waited:?}");
    assert_eq!(out, "");

    // Continued, the holder finds its transaction over its limit: rolled back, code 23.
    let err = text(&first.stderr);
    assert_eq!(first.status.code(), Some(23), "{err}");
    assert!(
        err.contains("the transaction was open longer than 4s"),
        "{err}"
    );
}

#[test]
fn a_wait_the_checker_cannot_see_is_refused_at_run_time_and_rolled_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = r#"goal: "wait inside, through an action"
action pause():
    sleep 10ms
transaction:
    memory.store("kept?", tags=["t"])
    pause()
"#;
    let res = aether(dir.path(), "t.aether", src)
        .output()
        .expect("aether runs");
    let err = text(&res.stderr);
    assert_eq!(res.status.code(), Some(21), "{err}");
    // The checker warned (A208), the VM refused the `sleep`, the write was undone.
    assert!(err.contains("A208"), "{err}");
    assert!(
        err.contains("error[RUNTIME_ERROR]: `sleep` inside a `transaction:` block: a transaction must not wait"),
        "{err}"
    );
    assert_eq!(memory_count(dir.path(), "count(tags=[\"t\"])"), "0\n");
}

#[test]
fn a_wait_written_inside_a_transaction_does_not_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = "goal: \"wait inside\"\ntransaction:\n    memory.store(\"x\")\n    sleep 10s\n";
    let res = aether(dir.path(), "t.aether", src)
        .output()
        .expect("aether runs");
    let err = text(&res.stderr);
    assert_eq!(res.status.code(), Some(25), "{err}");
    assert!(err.contains("A137"), "{err}");
    assert!(!dir.path().join("state/aether.db").exists());
}

#[test]
fn a_failing_step_inside_a_transaction_is_not_retried_after_a_backoff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = r#"goal: "retry inside"
action flaky():
    assert false, "boom"
workflow w:
    steps:
        - flaky retry=2 backoff=5s
transaction:
    memory.store("x", tags=["t"])
    w()
"#;
    let started = Instant::now();
    let res = aether(dir.path(), "t.aether", src)
        .output()
        .expect("aether runs");
    let err = text(&res.stderr);
    assert_eq!(res.status.code(), Some(21), "{err}");
    assert!(
        err.contains("step `flaky` failed and is not retried inside a `transaction:` block"),
        "{err}"
    );
    // Before: two backoffs (5 s, then 10 s) with the write lock held.
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
}

/// SQLite ends a transaction by itself on some errors in the middle of it (a full disk, an
/// I/O error); a trigger's `RAISE(ROLLBACK)` does the same on demand. Fiber `b` fails that
/// way while fiber `a` of the same block is still computing: `a`'s later write must not
/// commit on its own outside the block (it did: "after" stayed in the database).
#[test]
fn a_block_whose_transaction_sqlite_ended_keeps_none_of_its_later_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = aether(
        dir.path(),
        "setup.aether",
        "goal: \"setup\"\nmemory.store(\"setup\", tags=[\"s\"])\n",
    )
    .output()
    .expect("aether runs");
    assert!(setup.status.success(), "{}", text(&setup.stderr));
    let db = rusqlite::Connection::open(dir.path().join("state/aether.db")).expect("open");
    db.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON memory WHEN NEW.content LIKE '%boom%'
         BEGIN SELECT RAISE(ROLLBACK, 'simulated I/O error'); END;",
    )
    .expect("install the trigger");
    drop(db);
    let src = r#"goal: "a block SQLite ended in the middle"
metadata:
    requires: ["memory"]
action boom():
    memory.store("boom", tags=["y"])
    return 1
action slow():
    let i = 0
    while i < 200000:
        i = i + 1
    memory.store("after", tags=["y"])
    return 2
transaction:
    memory.store("before", tags=["y"])
    parallel:
        a: slow()
        b: boom()
    await a, b
"#;
    let res = aether(dir.path(), "t.aether", src)
        .output()
        .expect("aether runs");
    let err = text(&res.stderr);
    assert_eq!(res.status.code(), Some(21), "{err}");
    assert!(
        err.contains("the database rolled this `transaction:` block back after an error inside it (state database: simulated I/O error)"),
        "{err}"
    );
    assert_eq!(
        memory_count(
            dir.path(),
            "count(tags=[\"y\"]), memory.count(tags=[\"s\"])"
        ),
        "0 1\n"
    );
}
