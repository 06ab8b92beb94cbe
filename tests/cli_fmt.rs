//! End-to-end tests of `aether fmt` (docs/fmt.md): in place, --check, --diff, stdin, parse
//! errors, signed and unreadable files, and the repository's own files being formatted.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use assert_cmd::Command;

/// Files of the repository that `aether fmt --check` skips, and why: parser fixtures (invalid
/// on purpose, or valid ones that test odd layouts, snapshotted with their spans), the
/// language fixtures of lexical forms, fixtures whose line numbers the CLI tests assert (the
/// legacy tree's results are exact), and fixtures that do not parse or are not UTF-8.
const FMT_EXCLUDED: &[&str] = &[
    "aether-syntax/resources/",
    "tests/fixtures/cli/human/two_errors_one_warning.aether",
    "tests/fixtures/legacy/",
    "tests/fixtures/cli/report/warning_only.aether",
    "tests/fixtures/language/section1_lexical.aether",
    "tests/fixtures/language/section1_crlf.aether",
    "tests/fixtures/cli/report/parse_error.aether",
    "tests/fixtures/triage/tree/parse_error.aether",
    "tests/fixtures/triage/tree/not_utf8.aether",
];

const UGLY: &str = "goal:'tidy'\nlet x=[1,2 ,3]  # keep me\nif x:\n  print( x )\n";
const PRETTY: &str = "goal: \"tidy\"\nlet x = [1, 2, 3]  # keep me\n\nif x:\n    print(x)\n";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::cargo_bin("aether").expect("the aether binary is built");
    cmd.current_dir(dir).env("NO_COLOR", "1").args(args);
    if let Some(input) = stdin {
        cmd.write_stdin(input);
    }
    let out = cmd.output().expect("aether runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn rewrites_in_place_keeping_permissions_and_line_endings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lf = dir.path().join("a.aether");
    let crlf = dir.path().join("sub/b.aether");
    fs::create_dir(dir.path().join("sub")).expect("mkdir");
    fs::write(&lf, UGLY).expect("write");
    fs::write(&crlf, UGLY.replace('\n', "\r\n")).expect("write");
    fs::set_permissions(&lf, fs::Permissions::from_mode(0o640)).expect("chmod");
    let r = run_in(dir.path(), &["fmt", "."], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("2 files reformatted, 0 files left unchanged"),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read_to_string(&lf).expect("read"), PRETTY);
    assert_eq!(
        fs::read_to_string(&crlf).expect("read"),
        PRETTY.replace('\n', "\r\n")
    );
    let mode = fs::metadata(&lf).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // No temporary file is left behind, and a second run changes nothing.
    assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 2);
    let r = run_in(dir.path(), &["fmt", "."], None);
    assert!(
        r.stderr
            .contains("0 files reformatted, 2 files left unchanged"),
        "{}",
        r.stderr
    );
}

#[test]
fn check_writes_nothing_and_lists_what_would_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("ugly.aether"), UGLY).expect("write");
    fs::write(dir.path().join("pretty.aether"), PRETTY).expect("write");
    let r = run_in(dir.path(), &["fmt", "--check", "."], None);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "would reformat: ./ugly.aether\n");
    assert_eq!(
        fs::read_to_string(dir.path().join("ugly.aether")).expect("read"),
        UGLY
    );
    let r = run_in(dir.path(), &["fmt", "--check", "pretty.aether"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "");
}

#[test]
fn diff_prints_a_unified_diff() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("ugly.aether"), UGLY).expect("write");
    let r = run_in(dir.path(), &["fmt", "--diff", "ugly.aether"], None);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .starts_with("--- a/ugly.aether\n+++ b/ugly.aether\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\n-let x=[1,2 ,3]  # keep me\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\n+let x = [1, 2, 3]  # keep me\n"),
        "{}",
        r.stdout
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("ugly.aether")).expect("read"),
        UGLY
    );
}

#[test]
fn stdin_is_formatted_to_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    for flag in ["-", "--stdin"] {
        let r = run_in(dir.path(), &["fmt", flag], Some(UGLY));
        assert_eq!((r.code, r.stdout.as_str()), (0, PRETTY), "{}", r.stderr);
    }
    let r = run_in(dir.path(), &["fmt", "-", "--check"], Some(UGLY));
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    let r = run_in(
        dir.path(),
        &["fmt", "-", "--line-width", "20"],
        Some("x = [aaaa, bbbb, cccc, dddd]\n"),
    );
    assert_eq!(
        r.stdout,
        "x = [\n    aaaa,\n    bbbb,\n    cccc,\n    dddd,\n]\n"
    );
}

#[test]
fn a_parse_error_leaves_the_file_untouched_with_exit_20() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = "let ready = true\nif ready\n    print(1)\n";
    fs::write(dir.path().join("bad.aether"), bad).expect("write");
    fs::write(dir.path().join("ugly.aether"), UGLY).expect("write");
    let r = run_in(dir.path(), &["fmt", "."], None);
    assert_eq!(r.code, 20);
    assert!(r.stderr.contains("A001(syntax-error)"), "{}", r.stderr);
    assert!(r.stderr.contains("expected `:`"), "{}", r.stderr);
    assert_eq!(
        fs::read_to_string(dir.path().join("bad.aether")).expect("read"),
        bad
    );
    // The other file is still formatted.
    assert_eq!(
        fs::read_to_string(dir.path().join("ugly.aether")).expect("read"),
        PRETTY
    );
    let r = run_in(dir.path(), &["fmt", "-"], Some(bad));
    assert_eq!((r.code, r.stdout.as_str()), (20, ""));
}

#[test]
fn a_signed_file_is_refused_unless_allow_unsign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let signed = format!(
        "# @signature ed25519 0123456789abcdef {}\n{UGLY}",
        "A".repeat(86) + "=="
    );
    let path = dir.path().join("signed.aether");
    fs::write(&path, &signed).expect("write");
    let r = run_in(dir.path(), &["fmt", "signed.aether"], None);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("signed, and formatting would invalidate its signature"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("aether sign signed.aether --key SECRET"),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read_to_string(&path).expect("read"), signed);
    let r = run_in(dir.path(), &["fmt", "--check", "signed.aether"], None);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "would reformat: signed.aether\n");
    let r = run_in(
        dir.path(),
        &["fmt", "--allow-unsign", "signed.aether"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("removed its signature header"),
        "{}",
        r.stderr
    );
    assert_eq!(fs::read_to_string(&path).expect("read"), PRETTY);
    // A signed file that is already formatted keeps its signature and passes.
    let kept = format!(
        "# @signature ed25519 0123456789abcdef {}\n{PRETTY}",
        "A".repeat(86) + "=="
    );
    fs::write(&path, &kept).expect("write");
    let r = run_in(dir.path(), &["fmt", "--check", "signed.aether"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn unreadable_files_exit_26_and_the_rest_are_formatted() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("ugly.aether"), UGLY).expect("write");
    fs::write(dir.path().join("latin1.aether"), b"x = \"caf\xe9\"\n").expect("write");
    let r = run_in(
        dir.path(),
        &["fmt", "missing.aether", "latin1.aether", "ugly.aether"],
        None,
    );
    assert_eq!(r.code, 26);
    assert!(
        r.stderr.contains("error: missing.aether: cannot read"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("error: latin1.aether: file is not valid UTF-8"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("ugly.aether")).expect("read"),
        PRETTY
    );
}

#[test]
fn the_repository_files_are_formatted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for entry in walk(root) {
        let rel = entry
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        if !FMT_EXCLUDED.iter().any(|x| rel.starts_with(x)) {
            files.push(rel);
        }
    }
    assert!(files.len() >= 50, "only {} files", files.len());
    let mut args = vec!["fmt", "--check"];
    args.extend(files.iter().map(String::as_str));
    let r = run_in(root, &args, None);
    assert_eq!(
        r.code, 0,
        "run `aether fmt` on these files (or list them in FMT_EXCLUDED):\n{}{}",
        r.stdout, r.stderr
    );
}

/// Every `.aether` file under `dir`, skipping `target/` and hidden directories.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                out.extend(walk(&path));
            }
        } else if name.ends_with(".aether") {
            out.push(path);
        }
    }
    out
}
