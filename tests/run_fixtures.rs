//! `aether run` over the repository's own scripts: the docs/contract/LANGUAGE.md section 4 fixtures (each
//! `print` line's comment is its expected output) and the reference workflows in workflows/.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], state: &Path) -> Run {
    let out = Command::cargo_bin("aether")
        .expect("the aether binary is built")
        .current_dir(repo_root())
        .env_remove("AETHERRA_PROFILE")
        .env("NO_COLOR", "1")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("aether runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The expected stdout of a fixture: the comment after each top-level `print(...)`, without
/// a trailing explanation in parentheses set off by two or more spaces.
fn expected_prints(src: &str) -> Vec<String> {
    src.lines()
        .filter(|l| l.starts_with("print("))
        .map(|l| {
            let (_, comment) = l
                .rsplit_once("  # ")
                .unwrap_or_else(|| panic!("print line without an expected-output comment: {l}"));
            let comment = comment.trim_start();
            match comment.find("  (") {
                Some(i) if comment.ends_with(')') => comment[..i].trim_end().to_string(),
                _ => comment.to_string(),
            }
        })
        .collect()
}

#[test]
fn section_4_fixtures_print_what_their_comments_say() {
    let dir = repo_root().join("tests/fixtures/language");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures exist")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("section4_") && n.ends_with(".aether"))
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "section4_display and section4_expressions");
    let state = tempfile::tempdir().expect("tempdir");
    for f in files {
        let src = std::fs::read_to_string(&f).expect("readable");
        let expected = expected_prints(&src);
        let rel = f.strip_prefix(repo_root()).expect("inside the repo");
        let r = run(&["run", rel.to_str().expect("utf-8 path")], state.path());
        assert_eq!(r.code, 0, "{}: {}", rel.display(), r.stderr);
        let got: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(got, expected, "{}", rel.display());
    }
}

/// Reference workflows that need a runtime module function the runtime host does not
/// provide yet: they must fail with that message, not run wrongly. (None today.)
const NEED_RUNTIME_HOST: &[&str] = &[];

#[test]
fn reference_workflows_run_green_with_exact_output() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("workflows"))
        .expect("workflows/ exists")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".aether"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    let mut ran = 0;
    for name in &names {
        let path = format!("workflows/{name}.aether");
        let r = run(&["run", &path], state.path());
        if NEED_RUNTIME_HOST.contains(&name.as_str()) {
            assert_eq!(r.code, 21, "{name}: {}", r.stderr);
            assert!(
                r.stderr.contains("not available yet"),
                "{name} fails only for the missing runtime host: {}",
                r.stderr
            );
            continue;
        }
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        insta::assert_snapshot!(format!("workflow_{name}"), r.stdout);
        // Deterministic: a second run prints the same.
        let again = run(&["run", &path], state.path());
        assert_eq!(again.stdout, r.stdout, "{name} output is deterministic");
        ran += 1;
    }
    assert_eq!(ran, names.len(), "every reference workflow runs");
}

#[test]
fn incident_triage_reads_its_bar_from_args() {
    let state = tempfile::tempdir().expect("tempdir");
    let r = run(
        &[
            "run",
            "workflows/incident_triage.aether",
            "--arg",
            "min_share=0.9",
        ],
        state.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "api: 1 errors (0.25) -> watch\ndb: 3 errors (0.75) -> watch\n"
    );
}

#[test]
fn probe_fleet_probes_concurrently_and_records_events() {
    let state = tempfile::tempdir().expect("tempdir");
    let events = state.path().join("events.jsonl");
    let r = run(
        &[
            "run",
            "workflows/probe_fleet.aether",
            "--events",
            events.to_str().expect("utf-8"),
        ],
        state.path(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&events).expect("events written");
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            let kind = v["kind"].as_str().expect("kind").to_string();
            match v.get("status").and_then(|s| s.as_str()) {
                Some(s) => format!("{kind}:{s}"),
                None => kind,
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "run:started",
            "narrate",
            "emit",
            "workflow",
            "step:started",
            "step:succeeded",
            "step:started",
            "step:succeeded",
            "step:started",
            "step:succeeded",
            "run:succeeded",
        ]
    );
    assert!(text.contains(r#""name":"fleet.probed","payload":{"nodes":4,"slow":["core-1"]}"#));
}
