//! End-to-end tests of `aether explain`, `aether completions` and `aether init`, and of the
//! links from diagnostics to the rule pages.

use std::fs;
use std::path::Path;

use assert_cmd::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::cargo_bin("aether")
        .expect("the aether binary is built")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("aether runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn explain_prints_the_rule_page_from_docs_codes() {
    let page = fs::read_to_string(root().join("docs/codes/A101.md")).expect("the page");
    for args in [
        &["explain", "A101"][..],
        &["explain", "a101"],
        &["explain", "unknown-function"],
        &["check", "--explain", "A101"],
    ] {
        let r = run_in(root(), args);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, page.as_str()),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = run_in(root(), &["explain", "A1O1"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr, "error: no rule `A1O1`; did you mean `A101`?\n");
    let r = run_in(root(), &["explain", "nothing-like-it"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("error: no rule `nothing-like-it`; rule ids run from A001 to"),
        "{}",
        r.stderr
    );
}

#[test]
fn diagnostics_point_to_their_rule_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(
        dir.path().join("bad.aether"),
        "goal: \"g\"\nsend_alert(1)\n",
    )
    .expect("write");
    let r = run_in(dir.path(), &["check", "bad.aether"]);
    assert_eq!(r.code, 25);
    assert!(
        r.stderr.contains("for more, run `aether explain A101`"),
        "{}",
        r.stderr
    );
    let r = run_in(dir.path(), &["check", "bad.aether", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(json[0]["diagnostics"][0]["url"], "docs/codes/A101.md");
    let r = run_in(dir.path(), &["check", "bad.aether", "--format", "sarif"]);
    let sarif: serde_json::Value = serde_json::from_str(&r.stdout).expect("SARIF");
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    let a101 = rules
        .iter()
        .find(|r| r["id"] == "A101")
        .expect("A101 is listed");
    assert_eq!(a101["helpUri"], "docs/codes/A101.md");
    // The base is the repository's docs/codes/ folder: every URL names a page that exists.
    for rule in rules {
        let uri = rule["helpUri"].as_str().expect("every rule has a helpUri");
        assert!(root().join(uri).is_file(), "{uri}");
    }
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _aether"),
        ("zsh", "#compdef aether"),
        ("fish", "complete -c aether"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let r = run_in(root(), &["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(
            r.stdout.contains(marker),
            "{shell}: {}",
            &r.stdout[..200.min(r.stdout.len())]
        );
        assert!(
            r.stdout.contains("fmt") && r.stdout.contains("explain"),
            "{shell}"
        );
    }
    assert_eq!(run_in(root(), &["completions", "tcsh"]).code, 2);
}

#[test]
fn init_sets_up_a_project_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("proj");
    fs::create_dir_all(project.join(".github/workflows")).expect("mkdir");
    fs::write(project.join(".github/workflows/aether.yml"), "mine\n").expect("write");
    let r = run_in(dir.path(), &["init", "proj"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("created proj/workflows/hello.aether\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("created proj/.aetherra/workflow_suppressions.txt\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("skipped proj/.github/workflows/aether.yml (it exists; left as it is)\n"),
        "{}",
        r.stdout
    );
    assert_eq!(
        fs::read_to_string(project.join(".github/workflows/aether.yml")).expect("read"),
        "mine\n"
    );
    // The starter checks clean, is formatted, and runs; the suppression file is accepted.
    let r = run_in(&project, &["check", "."]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_in(&project, &["fmt", "--check", "."]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run_in(&project, &["run", "workflows/hello.aether"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "checkout: p95 120 ms\n"),
        "{}",
        r.stderr
    );
    // A second run skips everything and changes nothing.
    let before = fs::read_to_string(project.join("workflows/hello.aether")).expect("read");
    fs::write(
        project.join("workflows/hello.aether"),
        before.clone() + "# edited\n",
    )
    .expect("write");
    let r = run_in(dir.path(), &["init", "proj"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout.matches("skipped").count(), 3, "{}", r.stdout);
    assert_eq!(
        fs::read_to_string(project.join("workflows/hello.aether")).expect("read"),
        before + "# edited\n"
    );
}
