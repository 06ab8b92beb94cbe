//! End-to-end tests of `aether migrate`: each rewrite, line endings, idempotence, dry runs, signed files, reports and IO errors (docs/migrate.md).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// Environment variables that switch signing behaviour; removed so tests see the defaults.
const SIGNING_ENV: [&str; 5] = [
    "AETHERRA_PROFILE",
    "AETHERRA_SCRIPT_VERIFY_STRICT",
    "AETHERRA_SIGNING_STRICT",
    "AETHERRA_PROD_UNSAFE_ALLOW",
    "AETHER_SIGNING_KEY",
];

/// A legacy script with every kind of change: `intent:`, unquoted text with a quote and a
/// backslash, trailing whitespace and a run of four blank lines.
const LEGACY: &str = "intent: Keep the \"fleet\" \\ healthy  \nlet n = 2   \n\n\n\n\nprint(n)\t\n";
/// [`LEGACY`] migrated.
const LEGACY_MIGRATED: &str =
    "goal: \"Keep the \\\"fleet\\\" \\\\ healthy\"\nlet n = 2\n\n\nprint(n)\n";
/// A script that needs nothing.
const CLEAN: &str = "goal: \"clean\"\nprint(\"hello\")\n";
/// What a run over more than one file says on stderr when it writes the default report.
const DEFAULT_REPORT_LINE: &str = "report written to migration_report.md (a run over more than one file writes one; --no-report to skip it)\n";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::cargo_bin("aether").expect("the aether binary is built");
    cmd.current_dir(dir).env("NO_COLOR", "1");
    for var in SIGNING_ENV {
        cmd.env_remove(var);
    }
    let out = cmd.args(args).output().expect("aether starts");
    Run {
        code: out
            .status
            .code()
            .expect("aether exits by itself, not by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn write(dir: &Path, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().expect("a file has a parent")).expect("create dirs");
    fs::write(&path, bytes).expect("write file");
    path
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Migrate one source text with `--apply` and return the file's new text.
fn applied(src: &str) -> String {
    let dir = tempdir();
    let path = write(dir.path(), "x.aether", src);
    let res = run_in(dir.path(), &["migrate", "x.aether", "--apply"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    read(&path)
}

/// The file names in `dir` (recursively), sorted, relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir");
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A key pair from `aether keygen` in `dir/keys`: (secret key path, key id).
fn keygen(dir: &Path) -> (String, String) {
    let res = run_in(dir, &["keygen", "--out", "keys", "--name", "ci"]);
    assert_eq!(res.code, 0, "keygen: {}", res.stderr);
    ("keys/ci.key".to_string(), res.stdout.trim().to_string())
}

fn sign(dir: &Path, file: &str, key: &str) {
    // Legacy files do not parse until migrated: signing them takes the explicit flag.
    let res = run_in(dir, &["sign", file, "--key", key, "--allow-parse-errors"]);
    assert_eq!(res.code, 0, "sign: {}", res.stderr);
}

/// Run `program args...` in `dir` with `diff` on stdin; `None` when the program is not
/// installed.
fn apply_patch(
    dir: &Path,
    program: &str,
    args: &[&str],
    diff: &str,
) -> Option<std::process::Output> {
    use std::io::Write;
    let mut child = match std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("{program} is not installed: skipped");
            return None;
        }
        Err(e) => panic!("{program}: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(diff.as_bytes())
        .expect("write the diff");
    Some(child.wait_with_output().expect("wait"))
}

/// The same files, by name and content, in two fresh directories.
fn two_trees(files: &[(&str, &[u8])]) -> (tempfile::TempDir, tempfile::TempDir) {
    let (a, b) = (tempdir(), tempdir());
    for (name, bytes) in files {
        write(a.path(), name, bytes);
        write(b.path(), name, bytes);
    }
    (a, b)
}

/// `aether verify FILE --keyring keys`: the line it prints.
fn verify(dir: &Path, file: &str) -> String {
    let res = run_in(dir, &["verify", file, "--keyring", "keys"]);
    assert_eq!(res.code, 0, "verify (advisory): {}", res.stderr);
    res.stdout
}

// ----- the rewrites ----------------------------------------------------------------------------

#[test]
fn every_rewrite_at_once() {
    assert_eq!(applied(LEGACY), LEGACY_MIGRATED);
}

#[test]
fn intent_becomes_goal() {
    assert_eq!(
        applied("intent: \"x\"\nprint(1)\n"),
        "goal: \"x\"\nprint(1)\n"
    );
}

#[test]
fn intent_in_a_string_a_comment_or_a_block_is_left_alone() {
    let src = "goal: \"x\"\n# intent: a comment\n// intent: another\nprint(\"intent: a string\")\nmeta:\n    intent: \"a key\"\nlet m = {\nintent: 1}\n";
    let dir = tempdir();
    let path = write(dir.path(), "x.aether", src);
    let res = run_in(dir.path(), &["migrate", "x.aether", "--apply"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(read(&path), src);
    assert_eq!(
        res.stderr,
        "scanned 1 file: 0 changed, 1 unchanged, 0 skipped, 0 failed\n"
    );
}

#[test]
fn unquoted_goal_text_is_quoted_and_then_checks_clean() {
    let dir = tempdir();
    let path = write(
        dir.path(),
        "x.aether",
        "goal: Say \"hi\" to C:\\temp, then 50% more // why not\nprint(1)\n",
    );
    let before = run_in(dir.path(), &["check", "x.aether"]);
    assert_eq!(before.code, 20, "unquoted goal text is a PARSE_ERROR");
    assert!(
        before.stderr.contains("aether migrate"),
        "{}",
        before.stderr
    );
    let res = run_in(dir.path(), &["migrate", "x.aether", "--apply"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        read(&path),
        "goal: \"Say \\\"hi\\\" to C:\\\\temp, then 50% more\" // why not\nprint(1)\n"
    );
    let after = run_in(dir.path(), &["check", "x.aether"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
}

#[test]
fn unquoted_intent_text_gets_both_rewrites() {
    assert_eq!(
        applied("intent: Keep it healthy\nprint(1)\n"),
        "goal: \"Keep it healthy\"\nprint(1)\n"
    );
}

#[test]
fn trailing_spaces_and_tabs_are_trimmed_but_not_indentation() {
    assert_eq!(
        applied("goal: \"x\" \t\nif true:\n    print(1)  \n    \n    print(2)\n"),
        "goal: \"x\"\nif true:\n    print(1)\n\n    print(2)\n"
    );
}

#[test]
fn an_unterminated_string_keeps_its_trailing_spaces() {
    // The file stays a PARSE_ERROR either way; the string's text is not ours to change.
    assert_eq!(
        applied("goal: \"x\"  \nlet s = \"open   \nprint(1) \n"),
        "goal: \"x\"\nlet s = \"open   \nprint(1)\n"
    );
}

#[test]
fn unicode_spaces_in_goal_text_stay_inside_the_quotes() {
    // Regression: the text before a trailing comment was trimmed of Unicode whitespace, so
    // the fix left a U+00A0 outside the quotes: "internal error ... (A007 x1)", exit 27.
    let dir = tempdir();
    let src = "goal: hello \u{A0} # c\nprint(1)\n";
    let path = write(dir.path(), "n.aether", src);
    let res = run_in(dir.path(), &["migrate", "n.aether", "--dry-run"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stdout,
        "--- a/n.aether\n+++ b/n.aether\n@@ -1,2 +1,2 @@\n-goal: hello \u{A0} # c\n+goal: \"hello \u{A0}\" # c\n print(1)\n"
    );
    assert_eq!(read(&path), src);
    // The same at the start of the text; both then check clean.
    assert_eq!(
        applied("goal: \u{A0}hello\nprint(1)\n"),
        "goal: \"\u{A0}hello\"\nprint(1)\n"
    );
    let res = run_in(dir.path(), &["migrate", "n.aether", "--apply"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(read(&path), "goal: \"hello \u{A0}\" # c\nprint(1)\n");
    let check = run_in(dir.path(), &["check", "n.aether"]);
    assert_eq!(check.code, 0, "{}", check.stdout);
}

#[test]
fn goal_text_running_past_a_carriage_return_is_not_quoted() {
    // CR-only line endings: quoting "the rest of the line" up to the next LF would pull the
    // code that follows into the goal string.
    let dir = tempdir();
    let src = "goal: Keep it\rprint(1)\r";
    let path = write(dir.path(), "c.aether", src);
    for (mode, code) in [("--dry-run", 0), ("--apply", 1)] {
        let res = run_in(dir.path(), &["migrate", "c.aether", mode]);
        assert_eq!(res.code, code, "{mode}: {}", res.stderr);
        assert_eq!(res.stdout, "", "{mode}");
        assert!(
            res.stderr.starts_with(
                "skipped c.aether: line 1: goal text not quoted: it contains U+000D, which some editors show as a line break; quote it by hand\n"
            ),
            "{mode}: {}",
            res.stderr
        );
        assert_eq!(read(&path), src, "{mode}");
    }
    let res = run_in(dir.path(), &["migrate", "c.aether", "--check"]);
    assert_eq!(
        res.code, 1,
        "the file still needs migrating: {}",
        res.stderr
    );
    // The other rewrites of such a file still happen, with a warning about the goal.
    let path = write(dir.path(), "d.aether", "goal: Keep it\rprint(1)  \n");
    let res = run_in(dir.path(), &["migrate", "d.aether", "--apply"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(read(&path), "goal: Keep it\rprint(1)\n");
    assert!(
        res.stderr
            .starts_with("warning: d.aether: line 1: goal text not quoted: it contains U+000D"),
        "{}",
        res.stderr
    );
}

#[test]
fn runs_of_blank_lines_are_capped_at_two() {
    assert_eq!(
        applied("\n\n\ngoal: \"x\"\n\n\nprint(1)\n\n\n\n\n\nprint(2)\n\n\n\n"),
        "\n\ngoal: \"x\"\n\n\nprint(1)\n\n\nprint(2)\n\n\n"
    );
}

#[test]
fn crlf_files_stay_crlf() {
    let src = "intent: x  \r\nprint(1)\r\n\r\n\r\n\r\n\r\nprint(2)\t\r\n";
    let out = applied(src);
    assert_eq!(out, "goal: \"x\"\r\nprint(1)\r\n\r\n\r\nprint(2)\r\n");
}

#[test]
fn mixed_line_endings_are_kept_line_by_line() {
    assert_eq!(
        applied("goal: \"x\" \r\nprint(1) \nprint(2)\r\n"),
        "goal: \"x\"\r\nprint(1)\nprint(2)\r\n"
    );
}

#[test]
fn a_file_without_a_final_newline_stays_without_one() {
    assert_eq!(applied("intent: x\nprint(1)   "), "goal: \"x\"\nprint(1)");
    assert_eq!(applied("intent: x"), "goal: \"x\"");
}

#[test]
fn applying_twice_changes_nothing_the_second_time() {
    let dir = tempdir();
    let path = write(dir.path(), "x.aether", LEGACY);
    let first = run_in(dir.path(), &["migrate", "x.aether", "--apply"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.stdout,
        "migrated x.aether (intent 1, quoted-goal 1, trailing-whitespace 3, blank-lines 2)\n"
    );
    let once = read(&path);
    let second = run_in(dir.path(), &["migrate", "x.aether", "--apply"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout, "");
    assert_eq!(
        second.stderr,
        "scanned 1 file: 0 changed, 1 unchanged, 0 skipped, 0 failed\n"
    );
    assert_eq!(read(&path), once);
    let check = run_in(dir.path(), &["migrate", "x.aether", "--check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
}

#[test]
fn apply_keeps_permissions_writes_through_symlinks_and_leaves_no_temporary_file() {
    let dir = tempdir();
    let real = write(dir.path(), "real/x.aether", LEGACY);
    fs::set_permissions(&real, fs::Permissions::from_mode(0o751)).expect("chmod");
    fs::create_dir(dir.path().join("links")).expect("mkdir");
    std::os::unix::fs::symlink("../real/x.aether", dir.path().join("links/x.aether"))
        .expect("symlink");
    let res = run_in(dir.path(), &["migrate", "links/x.aether", "--apply"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert!(
        fs::symlink_metadata(dir.path().join("links/x.aether"))
            .expect("lstat")
            .file_type()
            .is_symlink(),
        "the link stays a link"
    );
    assert_eq!(read(&real), LEGACY_MIGRATED);
    assert_eq!(
        fs::metadata(&real).expect("stat").permissions().mode() & 0o777,
        0o751
    );
    assert_eq!(tree(dir.path()), ["links/x.aether", "real/x.aether"]);
}

// ----- dry run and check -----------------------------------------------------------------------

#[test]
fn dry_run_prints_diffs_and_changes_nothing() {
    let dir = tempdir();
    write(dir.path(), "flows/a.aether", LEGACY);
    write(dir.path(), "flows/b.aether", CLEAN);
    write(
        dir.path(),
        "flows/c.aether",
        "goal: \"no final newline\"  \nprint(1)",
    );
    let before: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| read(&dir.path().join(format!("flows/{n}.aether"))))
        .collect();
    let res = run_in(
        dir.path(),
        &["migrate", "flows", "--dry-run", "--no-report"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stderr,
        "scanned 3 files: 2 would change, 1 unchanged, 0 skipped, 0 failed (dry run: nothing written)\n"
    );
    let after: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| read(&dir.path().join(format!("flows/{n}.aether"))))
        .collect();
    assert_eq!(
        before, after,
        "a dry run writes nothing (and --no-report no report)"
    );
    assert_eq!(
        tree(dir.path()),
        ["flows/a.aether", "flows/b.aether", "flows/c.aether"]
    );
    assert!(res
        .stdout
        .starts_with("--- a/flows/a.aether\n+++ b/flows/a.aether\n@@ "));
    insta::assert_snapshot!("dry_run_diff", res.stdout);
}

#[test]
fn dry_run_diffs_keep_crlf_line_endings() {
    // Checked here rather than in a snapshot, which would normalise the line endings.
    let dir = tempdir();
    write(dir.path(), "c.aether", "goal: \"crlf\"  \r\nprint(1)\r\n");
    let res = run_in(dir.path(), &["migrate", "c.aether", "--dry-run"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stdout,
        "--- a/c.aether\n+++ b/c.aether\n@@ -1,2 +1,2 @@\n-goal: \"crlf\"  \r\n+goal: \"crlf\"\r\n print(1)\r\n"
    );
}

#[test]
fn diffs_of_files_with_bare_carriage_returns_apply_with_git_and_patch() {
    // Regression: the diff split lines at a CR not followed by LF, as neither `git apply`
    // nor `patch` does, and they rejected it.
    let files: [(&str, &[u8]); 2] = [
        ("a.aether", b"goal: \"x\"\n# note\rmore  \nprint(1)\n"),
        // CR-only line endings and no LF at all: one line to git, patch and the lexer.
        ("b.aether", b"intent: \"x\"\rprint(1)\r"),
    ];
    let (dir, copy) = two_trees(&files);
    let res = run_in(dir.path(), &["migrate", ".", "--dry-run", "--no-report"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stdout,
        "--- a/a.aether\n+++ b/a.aether\n@@ -1,3 +1,3 @@\n goal: \"x\"\n-# note\rmore  \n+# note\rmore\n print(1)\n\
         --- a/b.aether\n+++ b/b.aether\n@@ -1 +1 @@\n-intent: \"x\"\rprint(1)\r\n\\ No newline at end of file\n+goal: \"x\"\rprint(1)\r\n\\ No newline at end of file\n"
    );
    let applied = run_in(dir.path(), &["migrate", ".", "--apply", "--no-report"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    if let Some(out) = apply_patch(copy.path(), "git", &["apply", "-"], &res.stdout) {
        assert!(
            out.status.success(),
            "git apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (name, _) in files {
            assert_eq!(
                read(&copy.path().join(name)),
                read(&dir.path().join(name)),
                "{name}: git apply gives what --apply writes"
            );
        }
    }
}

#[test]
fn diffs_of_paths_with_spaces_apply_with_git_and_patch() {
    // Regression: `patch` read `--- a/dir with space/a b.aether` up to the first space.
    let files: [(&str, &[u8]); 2] = [
        ("dir with space/a b.aether", LEGACY.as_bytes()),
        ("q\"uote.aether", LEGACY.as_bytes()),
    ];
    let (dir, copy) = two_trees(&files);
    let res = run_in(dir.path(), &["migrate", ".", "--dry-run", "--no-report"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert!(
        res.stdout.starts_with(
            "--- a/dir with space/a b.aether\t\n+++ b/dir with space/a b.aether\t\n@@ "
        ),
        "{}",
        res.stdout
    );
    assert!(
        res.stdout
            .contains("\n--- \"a/q\\\"uote.aether\"\n+++ \"b/q\\\"uote.aether\"\n@@ "),
        "{}",
        res.stdout
    );
    for (program, args) in [
        ("git", &["apply", "--check", "-"][..]),
        ("patch", &["-p1", "--dry-run"][..]),
    ] {
        if let Some(out) = apply_patch(copy.path(), program, args, &res.stdout) {
            assert!(
                out.status.success(),
                "{program}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if let Some(out) = apply_patch(copy.path(), "patch", &["-p1"], &res.stdout) {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for (name, _) in files {
            assert_eq!(read(&copy.path().join(name)), LEGACY_MIGRATED, "{name}");
        }
    }
}

#[test]
fn check_exits_1_when_anything_needs_migrating() {
    let dir = tempdir();
    let path = write(dir.path(), "x.aether", LEGACY);
    write(dir.path(), "y.aether", CLEAN);
    let res = run_in(dir.path(), &["migrate", ".", "--check"]);
    assert_eq!(res.code, 1, "{}", res.stderr);
    assert!(res.stdout.starts_with("--- a/x.aether\n"), "{}", res.stdout);
    assert_eq!(
        res.stderr,
        format!("{DEFAULT_REPORT_LINE}scanned 2 files: 1 would change, 1 unchanged, 0 skipped, 0 failed (check: nothing written)\n")
    );
    assert_eq!(read(&path), LEGACY);
    let res = run_in(dir.path(), &["migrate", "y.aether", "--check"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(res.stdout, "");
}

#[test]
fn exactly_one_mode_is_required() {
    let dir = tempdir();
    write(dir.path(), "x.aether", LEGACY);
    for args in [
        &["migrate", "x.aether"][..],
        &["migrate", "x.aether", "--dry-run", "--apply"],
        &["migrate", "x.aether", "--apply", "--check"],
        &["migrate", "--apply"],
    ] {
        let res = run_in(dir.path(), args);
        assert_eq!(res.code, 2, "{args:?}: {}", res.stderr);
        assert_eq!(res.stdout, "", "{args:?}");
    }
    assert_eq!(read(&dir.path().join("x.aether")), LEGACY);
}

// ----- directories -----------------------------------------------------------------------------

#[test]
fn directories_are_searched_recursively_for_aether_files() {
    let dir = tempdir();
    write(dir.path(), "flows/b.aether", LEGACY);
    write(dir.path(), "flows/nested/deeper/a.aether", LEGACY);
    write(dir.path(), "flows/notes.txt", LEGACY);
    write(dir.path(), "flows/target/built.aether", LEGACY);
    write(dir.path(), "flows/.git/x.aether", LEGACY);
    write(dir.path(), "flows/ok.aether", CLEAN);
    let res = run_in(dir.path(), &["migrate", "flows", "--apply"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stdout,
        "migrated flows/b.aether (intent 1, quoted-goal 1, trailing-whitespace 3, blank-lines 2)\n\
         migrated flows/nested/deeper/a.aether (intent 1, quoted-goal 1, trailing-whitespace 3, blank-lines 2)\n"
    );
    assert_eq!(
        res.stderr,
        format!(
            "{DEFAULT_REPORT_LINE}scanned 3 files: 2 changed, 1 unchanged, 0 skipped, 0 failed\n"
        )
    );
    for untouched in [
        "flows/notes.txt",
        "flows/target/built.aether",
        "flows/.git/x.aether",
    ] {
        assert_eq!(read(&dir.path().join(untouched)), LEGACY, "{untouched}");
    }
}

#[test]
fn a_file_named_directly_is_migrated_whatever_its_extension() {
    let dir = tempdir();
    let path = write(dir.path(), "legacy.txt", LEGACY);
    let res = run_in(dir.path(), &["migrate", "legacy.txt", "--apply"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(read(&path), LEGACY_MIGRATED);
}

// ----- read-only files -------------------------------------------------------------------------

#[test]
fn read_only_files_are_skipped_unless_forced() {
    // The mode bits decide, not access(): tests may run as root, who can write anything.
    let dir = tempdir();
    let path = write(dir.path(), "ro.aether", LEGACY);
    let clean = write(dir.path(), "clean.aether", CLEAN);
    for p in [&path, &clean] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o444)).expect("chmod");
    }
    let skipped = "skipped ro.aether: read-only: not rewritten; make it writable or pass --force\n";
    let res = run_in(
        dir.path(),
        &[
            "migrate",
            "ro.aether",
            "clean.aether",
            "--apply",
            "--no-report",
        ],
    );
    // A skipped file leaves the tree unmigrated: --apply says so with exit 1.
    assert_eq!(res.code, 1, "{}", res.stderr);
    assert_eq!(res.stdout, "");
    assert_eq!(
        res.stderr,
        format!("{skipped}scanned 2 files: 0 changed, 1 unchanged, 1 skipped, 0 failed\n")
    );
    assert_eq!(read(&path), LEGACY);
    // A dry run says the same (no diff for what --apply would not write); --check fails.
    let res = run_in(dir.path(), &["migrate", "ro.aether", "--dry-run"]);
    assert_eq!((res.code, res.stdout.as_str()), (0, ""), "{}", res.stderr);
    assert!(res.stderr.starts_with(skipped), "{}", res.stderr);
    let res = run_in(dir.path(), &["migrate", "ro.aether", "--check"]);
    assert_eq!(res.code, 1, "{}", res.stderr);
    // --force rewrites it, and it stays read-only.
    let res = run_in(dir.path(), &["migrate", "ro.aether", "--apply", "--force"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(read(&path), LEGACY_MIGRATED);
    assert_eq!(
        fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
        0o444
    );
}

// ----- write errors ----------------------------------------------------------------------------

/// A directory whose absolute path is `len` bytes long, under `base`.
#[cfg(target_os = "linux")]
fn deep_dir(base: &Path, len: usize) -> PathBuf {
    let mut path = fs::canonicalize(base).expect("canonicalize");
    loop {
        let left = len - path.as_os_str().len();
        if left == 0 {
            break;
        }
        // "/" and a name, at most 200 bytes, never leaving a remainder of 1 (a bare "/").
        let name = (left - 1).min(200);
        let name = if left - 1 - name == 1 { name - 1 } else { name };
        path.push("d".repeat(name));
    }
    fs::create_dir_all(&path).expect("create the deep directory");
    path
}

#[cfg(target_os = "linux")]
#[test]
fn write_errors_name_the_file_not_the_temporary_file() {
    // Regression: `error: x.aether: cannot write: ... at path ".../.aether-migrate-XXXX"`.
    // A failure even root gets: the target's path fits Linux's 4096-byte limit, but the
    // temporary file's longer name beside it does not (ENAMETOOLONG).
    let dir = tempdir();
    let deep = deep_dir(dir.path(), 4080);
    let path = write(&deep, "x.aether", LEGACY);
    let res = run_in(&deep, &["migrate", "x.aether", "--apply"]);
    assert_eq!(res.code, 26, "{}", res.stderr);
    assert_eq!(
        res.stderr.lines().next(),
        Some("error: x.aether: cannot write: File name too long (os error 36)")
    );
    // Through a symlink, the error names the file the link points to.
    std::os::unix::fs::symlink(&path, dir.path().join("link.aether")).expect("symlink");
    let res = run_in(dir.path(), &["migrate", "link.aether", "--apply"]);
    assert_eq!(res.code, 26, "{}", res.stderr);
    assert_eq!(
        res.stderr.lines().next(),
        Some(
            format!(
                "error: link.aether: cannot write `{}` (the symlink's target): File name too long (os error 36)",
                path.display()
            )
            .as_str()
        )
    );
    assert!(!res.stderr.contains(".aether-migrate-"), "{}", res.stderr);
    assert_eq!(read(&path), LEGACY, "left unchanged");
}

// ----- signed files ----------------------------------------------------------------------------

#[test]
fn a_signed_file_that_needs_changes_is_skipped() {
    let dir = tempdir();
    let (key, _) = keygen(dir.path());
    let path = write(dir.path(), "s.aether", LEGACY);
    sign(dir.path(), "s.aether", &key);
    let signed = read(&path);
    // --apply left the file unmigrated: exit 1; a dry run only shows, exit 0.
    for (mode, code) in [("--apply", 1), ("--dry-run", 0)] {
        let res = run_in(dir.path(), &["migrate", "s.aether", mode]);
        assert_eq!(res.code, code, "{mode}: {}", res.stderr);
        assert_eq!(res.stdout, "", "{mode}: no diff for a skipped file");
        assert!(
            res.stderr.starts_with(
                "skipped s.aether: signed: rewriting it would invalidate the signature (use --resign KEY or --force)\n"
            ),
            "{mode}: {}",
            res.stderr
        );
        assert!(
            res.stderr.contains("0 unchanged, 1 skipped, 0 failed"),
            "{}",
            res.stderr
        );
        assert_eq!(read(&path), signed, "{mode}");
    }
    // `--check` counts it as needing migration.
    let res = run_in(dir.path(), &["migrate", "s.aether", "--check"]);
    assert_eq!(res.code, 1, "{}", res.stderr);
}

#[test]
fn a_signed_file_that_needs_nothing_is_unchanged() {
    let dir = tempdir();
    let (key, _) = keygen(dir.path());
    let path = write(dir.path(), "s.aether", CLEAN);
    sign(dir.path(), "s.aether", &key);
    let signed = read(&path);
    let res = run_in(dir.path(), &["migrate", "s.aether", "--apply"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stderr,
        "scanned 1 file: 0 changed, 1 unchanged, 0 skipped, 0 failed\n"
    );
    assert_eq!(read(&path), signed);
}

#[test]
fn resign_rewrites_and_signs_again_so_verify_passes() {
    let dir = tempdir();
    let (key, id) = keygen(dir.path());
    let path = write(dir.path(), "s.aether", "intent: x  \r\nprint(1)\r\n");
    sign(dir.path(), "s.aether", &key);
    assert_eq!(
        verify(dir.path(), "s.aether"),
        format!("OK s.aether (key {id})\n")
    );
    let res = run_in(
        dir.path(),
        &["migrate", "s.aether", "--apply", "--resign", &key],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stdout,
        format!("migrated s.aether (intent 1, quoted-goal 1, trailing-whitespace 1); re-signed with {id}\n")
    );
    let text = read(&path);
    let (header, body) = text.split_once("\r\n").expect("a CRLF header line");
    assert!(
        header.starts_with(&format!("# @signature ed25519 {id} ")),
        "{header}"
    );
    assert_eq!(body, "goal: \"x\"\r\nprint(1)\r\n");
    assert_eq!(
        verify(dir.path(), "s.aether"),
        format!("OK s.aether (key {id})\n")
    );
    // Re-signed and migrated: a second run has nothing to do.
    let again = run_in(
        dir.path(),
        &["migrate", "s.aether", "--apply", "--resign", &key],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(read(&path), text);
}

#[test]
fn resign_in_a_dry_run_shows_the_new_header_and_writes_nothing() {
    let dir = tempdir();
    let (key, id) = keygen(dir.path());
    let path = write(dir.path(), "s.aether", "intent: \"x\"\nprint(1)\n");
    sign(dir.path(), "s.aether", &key);
    let signed = read(&path);
    let res = run_in(
        dir.path(),
        &["migrate", "s.aether", "--dry-run", "--resign", &key],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert!(
        res.stdout
            .contains(&format!("\n+# @signature ed25519 {id} ")),
        "{}",
        res.stdout
    );
    assert!(res.stdout.contains("\n-intent: \"x\"\n"), "{}", res.stdout);
    assert!(res.stdout.contains("\n+goal: \"x\"\n"), "{}", res.stdout);
    assert_eq!(read(&path), signed);
}

#[test]
fn resign_leaves_unsigned_files_unsigned() {
    let dir = tempdir();
    let (key, _) = keygen(dir.path());
    let path = write(dir.path(), "u.aether", LEGACY);
    let res = run_in(
        dir.path(),
        &["migrate", "u.aether", "--apply", "--resign", &key],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(read(&path), LEGACY_MIGRATED);
}

#[test]
fn force_rewrites_and_removes_the_stale_header() {
    let dir = tempdir();
    let (key, _) = keygen(dir.path());
    let path = write(dir.path(), "s.aether", LEGACY);
    sign(dir.path(), "s.aether", &key);
    let signed = read(&path);
    let dry = run_in(dir.path(), &["migrate", "s.aether", "--dry-run", "--force"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("\n-# @signature ed25519 "),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stderr.starts_with(
            "warning: s.aether: the rewrite would invalidate its signature, so the header would be removed; sign it again with `aether sign`\n"
        ),
        "{}",
        dry.stderr
    );
    assert_eq!(read(&path), signed);
    let res = run_in(dir.path(), &["migrate", "s.aether", "--apply", "--force"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stdout,
        "migrated s.aether (intent 1, quoted-goal 1, trailing-whitespace 3, blank-lines 2); signature removed\n"
    );
    assert!(
        res.stderr.starts_with(
            "warning: s.aether: the rewrite invalidated its signature, so the header was removed; sign it again with `aether sign`\n"
        ),
        "{}",
        res.stderr
    );
    assert_eq!(read(&path), LEGACY_MIGRATED);
    assert_eq!(verify(dir.path(), "s.aether"), "FAIL s.aether (missing)\n");
}

#[test]
fn resign_and_force_together_or_a_bad_key_are_usage_errors() {
    let dir = tempdir();
    let (key, _) = keygen(dir.path());
    let path = write(dir.path(), "s.aether", LEGACY);
    sign(dir.path(), "s.aether", &key);
    let signed = read(&path);
    let res = run_in(
        dir.path(),
        &[
            "migrate", "s.aether", "--apply", "--force", "--resign", &key,
        ],
    );
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.stderr.contains("cannot be used with"), "{}", res.stderr);
    write(dir.path(), "bad.key", "not a key\n");
    fs::set_permissions(
        dir.path().join("bad.key"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    for bad in ["absent.key", "bad.key"] {
        let res = run_in(
            dir.path(),
            &["migrate", "s.aether", "--apply", "--resign", bad],
        );
        assert_eq!(res.code, 2, "{bad}: {}", res.stderr);
        assert!(
            res.stderr.starts_with("error: --resign: "),
            "{}",
            res.stderr
        );
        assert_eq!(res.stdout, "");
    }
    assert_eq!(read(&path), signed, "nothing was touched");
}

// ----- report ----------------------------------------------------------------------------------

#[test]
fn report_lists_every_file_with_its_changes() {
    let dir = tempdir();
    let (key, _) = keygen(dir.path());
    write(dir.path(), "flows/a.aether", LEGACY);
    write(dir.path(), "flows/b.aether", CLEAN);
    write(dir.path(), "flows/c.aether", "goal: \"x\"  \n");
    write(dir.path(), "flows/d|pipe.aether", "goal: \"x\"\n\n\n\n\n");
    write(dir.path(), "flows/s.aether", "intent: \"signed\"\n");
    sign(dir.path(), "flows/s.aether", &key);
    write(dir.path(), "flows/z.aether", b"goal: \"x\"\n\xff\n");
    let res = run_in(
        dir.path(),
        &[
            "migrate",
            "flows",
            "--apply",
            "--report",
            "migration_report.md",
        ],
    );
    assert_eq!(res.code, 26, "{}", res.stderr);
    let report = read(&dir.path().join("migration_report.md"));
    let generated = report
        .lines()
        .find_map(|l| l.strip_prefix("- Generated: "))
        .expect("a Generated line");
    assert!(
        generated.ends_with('Z') && generated.contains('T'),
        "{generated}"
    );
    insta::assert_snapshot!("report", report.replace(generated, "[timestamp]"));
}

#[test]
fn a_run_over_several_files_writes_migration_report_md_by_default() {
    let dir = tempdir();
    write(dir.path(), "flows/a.aether", LEGACY);
    write(dir.path(), "flows/b.aether", CLEAN);
    let res = run_in(dir.path(), &["migrate", "flows", "--dry-run"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert!(
        res.stderr.starts_with(DEFAULT_REPORT_LINE),
        "{}",
        res.stderr
    );
    let report = read(&dir.path().join("migration_report.md"));
    assert!(
        report.contains("| `flows/a.aether` | would change | 1 | 1 | 3 | 2 | - |\n"),
        "{report}"
    );
    assert!(
        report.contains("| `flows/b.aether` | unchanged | 0 | 0 | 0 | 0 | - |\n"),
        "{report}"
    );
    fs::remove_file(dir.path().join("migration_report.md")).expect("rm");
    // --no-report: none; --report FILE: that file instead.
    let res = run_in(
        dir.path(),
        &["migrate", "flows", "--dry-run", "--no-report"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert!(!res.stderr.contains("report"), "{}", res.stderr);
    let res = run_in(
        dir.path(),
        &["migrate", "flows", "--apply", "--report", "r.md"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert!(!res.stderr.contains("report"), "{}", res.stderr);
    assert!(read(&dir.path().join("r.md")).contains("| `flows/a.aether` | changed |"));
    assert_eq!(
        tree(dir.path()),
        ["flows/a.aether", "flows/b.aether", "r.md"]
    );
    // One file: a report only when asked for.
    let res = run_in(dir.path(), &["migrate", "flows/a.aether", "--check"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        tree(dir.path()),
        ["flows/a.aether", "flows/b.aether", "r.md"]
    );
    // --report and --no-report contradict each other.
    let res = run_in(
        dir.path(),
        &[
            "migrate",
            "flows",
            "--check",
            "--report",
            "r.md",
            "--no-report",
        ],
    );
    assert_eq!(res.code, 2, "{}", res.stderr);
    assert!(res.stderr.contains("cannot be used with"), "{}", res.stderr);
}

#[test]
fn the_report_is_replaced_atomically_and_readable_by_all() {
    let dir = tempdir();
    write(dir.path(), "a.aether", LEGACY);
    write(dir.path(), "b.aether", CLEAN);
    let res = run_in(dir.path(), &["migrate", ".", "--dry-run"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    let report = dir.path().join("migration_report.md");
    assert_eq!(
        fs::metadata(&report).expect("stat").permissions().mode() & 0o777,
        0o644,
        "a new report is 0644, whatever the temporary file started as"
    );
    // A rename, not a rewrite in place: another link to the old report keeps the old text.
    fs::hard_link(&report, dir.path().join("old.md")).expect("hard link");
    let old = read(&report);
    let res = run_in(dir.path(), &["migrate", ".", "--apply"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(read(&dir.path().join("old.md")), old);
    assert!(read(&report).contains("- Mode: apply"), "{}", read(&report));
    assert_eq!(
        tree(dir.path()),
        ["a.aether", "b.aether", "migration_report.md", "old.md"],
        "no temporary file is left behind"
    );
}

#[test]
fn report_is_written_for_a_single_file_and_in_a_dry_run() {
    let dir = tempdir();
    let path = write(dir.path(), "x.aether", LEGACY);
    let res = run_in(
        dir.path(),
        &["migrate", "x.aether", "--dry-run", "--report", "r.md"],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(read(&path), LEGACY);
    let report = read(&dir.path().join("r.md"));
    assert!(
        report.contains("- Mode: dry run (nothing written)\n"),
        "{report}"
    );
    assert!(
        report.contains("| `x.aether` | would change | 1 | 1 | 3 | 2 | - |\n"),
        "{report}"
    );
}

#[test]
fn an_unwritable_report_is_an_io_error_after_the_migration() {
    let dir = tempdir();
    let path = write(dir.path(), "x.aether", LEGACY);
    let res = run_in(
        dir.path(),
        &[
            "migrate",
            "x.aether",
            "--apply",
            "--report",
            "x.aether/r.md",
        ],
    );
    assert_eq!(res.code, 26, "{}", res.stderr);
    assert!(
        res.stderr
            .starts_with("error: cannot write report `x.aether/r.md`: "),
        "{}",
        res.stderr
    );
    assert!(!res.stderr.contains(".aether-report-"), "{}", res.stderr);
    assert_eq!(read(&path), LEGACY_MIGRATED);
}

// ----- IO errors -------------------------------------------------------------------------------

#[test]
fn unreadable_files_are_reported_at_the_end_and_the_rest_migrated() {
    let dir = tempdir();
    write(dir.path(), "bytes.aether", b"goal: \"x\"\n\xff\n");
    std::os::unix::fs::symlink("loop.aether", dir.path().join("loop.aether")).expect("symlink");
    let good = write(dir.path(), "good.aether", LEGACY);
    let res = run_in(
        dir.path(),
        &[
            "migrate",
            "bytes.aether",
            "missing.aether",
            "loop.aether",
            "good.aether",
            "--apply",
        ],
    );
    assert_eq!(res.code, 26, "{}", res.stderr);
    assert_eq!(
        read(&good),
        LEGACY_MIGRATED,
        "the readable file is migrated"
    );
    let lines: Vec<&str> = res.stderr.lines().collect();
    assert_eq!(lines.len(), 5, "{}", res.stderr);
    assert_eq!(lines[0], "error: bytes.aether: not valid UTF-8 (byte 10)");
    assert!(
        lines[1].starts_with("error: missing.aether: cannot read: No such file or directory"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("error: loop.aether: cannot read: "),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], DEFAULT_REPORT_LINE.trim_end());
    assert_eq!(
        lines[4],
        "scanned 4 files: 1 changed, 0 unchanged, 0 skipped, 3 failed"
    );
    // A dry run reports them the same way.
    let res = run_in(dir.path(), &["migrate", "bytes.aether", "--dry-run"]);
    assert_eq!(res.code, 26, "{}", res.stderr);
}
