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
    let res = run_in(dir, &["sign", file, "--key", key]);
    assert_eq!(res.code, 0, "sign: {}", res.stderr);
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
    let res = run_in(dir.path(), &["migrate", "flows", "--dry-run"]);
    assert_eq!(res.code, 0, "{}", res.stderr);
    assert_eq!(
        res.stderr,
        "scanned 3 files: 2 would change, 1 unchanged, 0 skipped, 0 failed (dry run: nothing written)\n"
    );
    let after: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| read(&dir.path().join(format!("flows/{n}.aether"))))
        .collect();
    assert_eq!(before, after, "a dry run writes nothing");
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
fn check_exits_1_when_anything_needs_migrating() {
    let dir = tempdir();
    let path = write(dir.path(), "x.aether", LEGACY);
    write(dir.path(), "y.aether", CLEAN);
    let res = run_in(dir.path(), &["migrate", ".", "--check"]);
    assert_eq!(res.code, 1, "{}", res.stderr);
    assert!(res.stdout.starts_with("--- a/x.aether\n"), "{}", res.stdout);
    assert_eq!(
        res.stderr,
        "scanned 2 files: 1 would change, 1 unchanged, 0 skipped, 0 failed (check: nothing written)\n"
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
        "scanned 3 files: 2 changed, 1 unchanged, 0 skipped, 0 failed\n"
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

// ----- signed files ----------------------------------------------------------------------------

#[test]
fn a_signed_file_that_needs_changes_is_skipped() {
    let dir = tempdir();
    let (key, _) = keygen(dir.path());
    let path = write(dir.path(), "s.aether", LEGACY);
    sign(dir.path(), "s.aether", &key);
    let signed = read(&path);
    for mode in ["--apply", "--dry-run"] {
        let res = run_in(dir.path(), &["migrate", "s.aether", mode]);
        assert_eq!(res.code, 0, "{mode}: {}", res.stderr);
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
            "no/such/dir/r.md",
        ],
    );
    assert_eq!(res.code, 26, "{}", res.stderr);
    assert!(
        res.stderr
            .starts_with("error: cannot write report `no/such/dir/r.md`: "),
        "{}",
        res.stderr
    );
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
    assert_eq!(lines.len(), 4, "{}", res.stderr);
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
    assert_eq!(
        lines[3],
        "scanned 4 files: 1 changed, 0 unchanged, 0 skipped, 3 failed"
    );
    // A dry run reports them the same way.
    let res = run_in(dir.path(), &["migrate", "bytes.aether", "--dry-run"]);
    assert_eq!(res.code, 26, "{}", res.stderr);
}
