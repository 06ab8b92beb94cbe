//! End-to-end tests of `aether run`'s progress display (issue 12): shown on a terminal (a
//! pseudo-terminal from util-linux `script`), hidden when piped and with `--quiet`, and never
//! breaking the script's own lines.

use std::path::Path;
use std::process::Command;

/// A step that fails once, waits out a 1.5 s backoff (the display counts it down), then
/// succeeds; output before, inside and after it.
const FLAKY: &str = r#"goal: "progress"
let t0 = now()
action warm():
    print("attempt at warming")
    assert now() - t0 >= 1, "still cold"
    return "warm"
workflow w:
    steps:
        - warm as state retry=3 backoff=1500ms
        - print("state is " + state)
print("before the workflow")
"#;

fn script_file(dir: &Path) -> String {
    std::fs::write(dir.join("p.aether"), FLAKY).expect("write script");
    "p.aether".to_string()
}

/// Runs `aether run p.aether EXTRA` on a pseudo-terminal (stdout and stderr both on it) and
/// returns the terminal's transcript.
fn on_a_terminal(extra: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = script_file(dir.path());
    let bin = assert_cmd::cargo::cargo_bin("aether");
    let command = format!("'{}' run {file} {extra}", bin.display());
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("AETHERRA_QUIET")
        .env_remove("AETHERRA_PROFILE")
        .output()
        .expect("util-linux `script` runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// What each terminal row shows at the end: the text after the last erase-line of the row.
fn rows(transcript: &str) -> Vec<String> {
    transcript
        .split('\n')
        .map(|row| {
            let row = row.trim_end_matches('\r');
            let shown = row.rsplit("\r\x1b[2K").next().unwrap_or(row);
            shown.to_string()
        })
        .collect()
}

#[test]
fn progress_shows_steps_retries_and_backoff_on_a_terminal_around_the_scripts_lines() {
    let (code, transcript) = on_a_terminal("");
    assert_eq!(code, 0, "{transcript:?}");
    let rows = rows(&transcript);
    // The script's lines are whole rows of their own.
    for line in ["before the workflow", "attempt at warming", "state is warm"] {
        assert!(
            rows.iter().any(|r| r == line),
            "no row {line:?} in {rows:#?}"
        );
    }
    assert_eq!(
        rows.iter().filter(|r| *r == "attempt at warming").count(),
        2,
        "{rows:#?}"
    );
    // Lines that stay: the retry (with its reason and backoff) and the finish.
    assert!(
        rows.iter().any(
            |r| r.starts_with("    Retrying `warm` in 1.5s: attempt 1 failed")
                && r.ends_with(": still cold")
        ),
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("    Finished `warm` (attempt 2) in ")),
        "{rows:#?}"
    );
    // The status line: the running step, then the backoff counting down.
    assert!(
        transcript.contains("     Running `warm` ("),
        "{transcript:?}"
    );
    assert!(
        transcript.contains("before attempt 2 of `warm`"),
        "{transcript:?}"
    );
    // It is taken away at the end: the last row shows nothing of it.
    let last = rows.iter().rev().find(|r| !r.is_empty()).expect("a row");
    assert!(
        !last.contains("Running") && !last.contains("Waiting"),
        "{rows:#?}"
    );
}

#[test]
fn quiet_hides_progress_on_a_terminal() {
    for flag in ["--quiet", "-q"] {
        let (code, transcript) = on_a_terminal(flag);
        assert_eq!(code, 0, "{transcript:?}");
        assert!(!transcript.contains('\x1b'), "{transcript:?}");
        assert!(!transcript.contains("Retrying"), "{transcript:?}");
        let rows = rows(&transcript);
        assert!(rows.iter().any(|r| r == "state is warm"), "{rows:#?}");
    }
}

#[test]
fn progress_is_hidden_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = script_file(dir.path());
    let out = Command::new(assert_cmd::cargo::cargo_bin("aether"))
        .args(["run", &file])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("AETHERRA_QUIET")
        .output()
        .expect("aether runs");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "before the workflow\nattempt at warming\nattempt at warming\nstate is warm\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("Retrying") && !err.contains('\x1b'),
        "{err:?}"
    );
}
