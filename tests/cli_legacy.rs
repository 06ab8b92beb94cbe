//! End-to-end tests of the legacy-dialect loop on tests/fixtures/legacy: `check` names the dialect once, `classify` buckets by construct and groups identical copies, `migrate` converts what has a faithful mapping, and the numbers move.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

/// The fixture tree of legacy files (copied into a temporary directory before use).
const TREE: &str = "tests/fixtures/legacy";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::cargo_bin("aether").expect("the aether binary is built");
    cmd.current_dir(dir).env("NO_COLOR", "1");
    for var in [
        "AETHERRA_PROFILE",
        "AETHERRA_SCRIPT_VERIFY_STRICT",
        "AETHERRA_SIGNING_STRICT",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.args(args).output().expect("aether starts");
    Run {
        code: out.status.code().expect("aether exits by itself"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let p = entry.expect("entry").path();
        let dest = to.join(p.file_name().expect("a name"));
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            fs::copy(&p, &dest).expect("copy fixture");
        }
    }
}

/// A copy of the legacy tree under `tree/` in a temporary directory.
fn legacy_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(TREE),
        &dir.path().join("tree"),
    );
    dir
}

/// `check --format json` over the tree: (path, code name, rule ids) per file.
fn check(dir: &Path) -> Vec<(String, String, Vec<String>)> {
    let res = run_in(dir, &["check", "tree", "--format", "json"]);
    let doc: Value = serde_json::from_str(&res.stdout).expect("JSON report");
    doc.as_array()
        .expect("an array of files")
        .iter()
        .map(|f| {
            (
                f["file"].as_str().expect("file").to_string(),
                f["code_name"].as_str().expect("code_name").to_string(),
                f["diagnostics"]
                    .as_array()
                    .expect("diagnostics")
                    .iter()
                    .map(|d| d["rule"].as_str().expect("rule").to_string())
                    .collect(),
            )
        })
        .collect()
}

fn total_diagnostics(files: &[(String, String, Vec<String>)]) -> usize {
    files.iter().map(|f| f.2.len()).sum()
}

fn classify(dir: &Path) -> Value {
    let res = run_in(
        dir,
        &[
            "classify",
            "tree",
            "--check-only",
            "--output",
            "out.json",
            "--markdown",
            "out.md",
            "--history-dir",
            "hist",
        ],
    );
    assert_eq!(res.code, 0, "{}", res.stderr);
    serde_json::from_str(&fs::read_to_string(dir.join("out.json")).expect("report")).expect("JSON")
}

#[test]
fn check_names_the_dialect_once_with_counts() {
    let dir = legacy_tree();
    let res = run_in(
        dir.path(),
        &["check", "tree/neurocode/assistant.aether", "--json-status"],
    );
    assert_eq!(res.code, 20, "the result code stays PARSE_ERROR");
    let status: Value = serde_json::from_str(res.stdout.trim()).expect("status line");
    assert_eq!(
        status["message"],
        "this file is written in the NeuroCode dialect: 3 think, 3 remember ... as, 1 recall, 1 when block, 1 define ... end, 1 goal ... priority; aether migrate converts 10 of 10"
    );
    assert_eq!(status["line"], 2);
    assert_eq!(res.stderr.matches("A401(").count(), 1, "{}", res.stderr);
    let learner = run_in(
        dir.path(),
        &["check", "tree/neurocode/learner.aether", "--json-status"],
    );
    let status: Value = serde_json::from_str(learner.stdout.trim()).expect("status line");
    assert_eq!(
        status["message"],
        "this file is written in the NeuroCode dialect: 2 think, 1 learn, 1 suggest, 1 when block, 1 goal ... priority, 1 agent switch; aether migrate converts 3 of 7"
    );
}

#[test]
fn check_rule_ids_per_file_before_migration() {
    let dir = legacy_tree();
    let files = check(dir.path());
    let rules: Vec<(&str, &str, String)> = files
        .iter()
        .map(|(p, c, r)| (p.as_str(), c.as_str(), r.join(" ")))
        .collect();
    assert_eq!(
        rules,
        [
            (
                "tree/brace/old/weather_plugin.aether",
                "PARSE_ERROR",
                "A401 A402 A403".into()
            ),
            (
                "tree/brace/weather_plugin.aether",
                "PARSE_ERROR",
                "A401 A402 A403".into()
            ),
            ("tree/clean/healthy.aether", "SUCCESS", String::new()),
            ("tree/goal_priority.aether", "PARSE_ERROR", "A417".into()),
            (
                "tree/manifests/deploy_manifest.aether",
                "PARSE_ERROR",
                "A401 A404".into()
            ),
            (
                "tree/mixed/model_config.aether",
                "PARSE_ERROR",
                "A420 A420".into()
            ),
            (
                "tree/neurocode/assistant.aether",
                "PARSE_ERROR",
                "A401 A417 A410 A411 A416 A415 A412".into()
            ),
            (
                "tree/neurocode/assistant_backup.aether",
                "PARSE_ERROR",
                "A401 A417 A410 A411 A416 A415 A412".into()
            ),
            (
                "tree/neurocode/learner.aether",
                "PARSE_ERROR",
                "A401 A417 A418 A410 A413 A414 A415".into()
            ),
            (
                "tree/neurocode/memory_loop.aether",
                "PARSE_ERROR",
                "A401 A410 A411 A412".into()
            ),
        ]
    );
}

#[test]
fn classify_buckets_by_construct_and_groups_copies() {
    let dir = legacy_tree();
    let doc = classify(dir.path());
    let s = &doc["summary"];
    assert_eq!(s["total"], 10);
    assert_eq!(s["failed"], 9);
    let rows: Vec<String> = s["legacy"]
        .as_array()
        .expect("legacy buckets")
        .iter()
        .map(|r| {
            format!(
                "{} {} files={} copies={} sites={} convertible={} {}",
                r["rule"].as_str().expect("rule"),
                r["construct"].as_str().expect("construct"),
                r["files"],
                r["copies"],
                r["sites"],
                r["convertible_sites"],
                r["verdict"].as_str().expect("verdict")
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "A410 NeuroCode `think` files=3 copies=4 sites=7 convertible=7 migratable",
            "A417 `goal: TEXT priority: LEVEL` files=3 copies=4 sites=3 convertible=3 migratable",
            "A411 NeuroCode `remember ... as` files=2 copies=3 sites=6 convertible=6 migratable",
            "A412 NeuroCode `recall` files=2 copies=3 sites=2 convertible=2 migratable",
            "A415 NeuroCode `when COND:` files=2 copies=3 sites=2 convertible=1 partly migratable: 1 of 2 sites (event-style trigger for the rest)",
            "A403 brace plugin `fn` files=1 copies=2 sites=2 convertible=0 not migratable: no Aether equivalent",
            "A420 unquoted text value files=1 copies=1 sites=2 convertible=2 migratable",
            "A402 brace plugin module files=1 copies=2 sites=1 convertible=0 not migratable: no Aether equivalent",
            "A404 YAML plugin manifest files=1 copies=1 sites=1 convertible=0 not migratable: not a script",
            "A413 NeuroCode `learn` files=1 copies=1 sites=1 convertible=0 not migratable: no Aether equivalent",
            "A414 NeuroCode `suggest` files=1 copies=1 sites=1 convertible=0 not migratable: no Aether equivalent",
            "A416 NeuroCode `define ... end` files=1 copies=2 sites=1 convertible=1 migratable",
            "A418 NeuroCode `agent: on` files=1 copies=1 sites=1 convertible=0 not migratable: no Aether equivalent",
        ]
    );
    assert_eq!(
        s["legacy"][0]["examples"],
        serde_json::json!([
            "tree/neurocode/assistant.aether",
            "tree/neurocode/learner.aether",
            "tree/neurocode/memory_loop.aether"
        ])
    );
    let d = &s["duplicates"];
    assert_eq!(d["copies"], 2);
    assert_eq!(d["distinct_failed"], 7);
    let groups: Vec<&Value> = d["groups"].as_array().expect("groups").iter().collect();
    let files: Vec<Value> = groups.iter().map(|g| g["files"].clone()).collect();
    assert!(files.contains(&serde_json::json!([
        "tree/neurocode/assistant.aether",
        "tree/neurocode/assistant_backup.aether"
    ])));
    assert!(files.contains(&serde_json::json!([
        "tree/brace/old/weather_plugin.aether",
        "tree/brace/weather_plugin.aether"
    ])));
    let backup = doc["workflows"]
        .as_array()
        .expect("workflows")
        .iter()
        .find(|w| w["path"] == "tree/neurocode/assistant_backup.aether")
        .expect("the backup copy");
    assert_eq!(backup["duplicate_of"], "tree/neurocode/assistant.aether");
    assert_eq!(backup["dialect"], "NeuroCode");
    let md = fs::read_to_string(dir.path().join("out.md")).expect("markdown");
    assert!(md.contains("| NeuroCode `remember ... as` | A411 neurocode-remember-as | 2 | 6 | migratable | `tree/neurocode/assistant.aether`, `tree/neurocode/memory_loop.aether` |"), "{md}");
    assert!(md.contains("| brace plugin module | A402 brace-plugin-module | 1 | 1 | not migratable: no Aether equivalent |"), "{md}");
    assert!(md.contains("## Identical copies"), "{md}");
}

/// The NeuroCode assistant after `migrate --apply`.
const ASSISTANT_MIGRATED: &str = r#"# Lyrixa assistant: greets, remembers what it was told, recalls it later.
goal: "create secure web application"
meta:
    priority: "critical"

narrate("Starting the assistant")
memory.store("user prefers dark mode", tags=["preferences"])
memory.store("deploys happen on Fridays", tags=["schedule"]) # a team rule

action greet(name):
    narrate("Greeting the user")
    memory.store(name, tags=["visitors"])

if 3 > 2:
    narrate("Numbers still work")

memory.recall("preferences")
greet("Ada")
"#;

#[test]
fn migrate_converts_what_is_faithful_and_the_numbers_move() {
    let dir = legacy_tree();
    let d = dir.path();
    let before = check(d);
    assert_eq!(total_diagnostics(&before), 36);
    assert_eq!(before.iter().filter(|f| f.1 == "PARSE_ERROR").count(), 9);

    let dry = run_in(d, &["migrate", "tree", "--dry-run", "--report", "dry.md"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry
        .stderr
        .ends_with("scanned 10 files: 6 would change, 4 unchanged, 0 skipped, 0 failed (dry run: nothing written)\n"));
    assert!(dry.stderr.contains(
        "note: tree/neurocode/learner.aether:6: A413 neurocode-learn left as it is: no Aether equivalent: `learn` has no faithful mapping\n"
    ));
    let report = fs::read_to_string(d.join("dry.md")).expect("report");
    assert!(report.contains("| `tree/neurocode/learner.aether` | 9 | A415 neurocode-when | NeuroCode 'when COND:' | left as it is: event-style trigger"), "{report}");
    assert_eq!(
        report.matches("| would convert |").count(),
        32,
        "every convertible site in the report: {report}"
    );

    let apply = run_in(d, &["migrate", "tree", "--apply", "--no-report"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(
        apply.stdout,
        "migrated tree/goal_priority.aether (legacy 1)\n\
         migrated tree/mixed/model_config.aether (legacy 2)\n\
         migrated tree/neurocode/assistant.aether (legacy 10)\n\
         migrated tree/neurocode/assistant_backup.aether (legacy 10)\n\
         migrated tree/neurocode/learner.aether (legacy 3)\n\
         migrated tree/neurocode/memory_loop.aether (legacy 6)\n"
    );
    let read = |p: &str| fs::read_to_string(d.join(p)).expect("migrated file");
    assert_eq!(read("tree/neurocode/assistant.aether"), ASSISTANT_MIGRATED);
    assert_eq!(
        read("tree/goal_priority.aether"),
        "goal: \"create secure web application\"\nmeta:\n    priority: \"critical\"\n\nprint(\"hardening the application\")\n",
        "the priority is not folded into the goal text"
    );
    assert_eq!(
        read("tree/mixed/model_config.aether"),
        "goal: \"Summarise the queue with a model\"\n\nmeta:\n    model: \"gpt-4o\"\n    cache_limit: \"100_MB\"\n    owner: \"ops\"\n\nprint(\"summarising\")\n"
    );
    // Not rewritten: no faithful mapping.
    assert_eq!(
        read("tree/brace/weather_plugin.aether"),
        fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(TREE)
                .join("brace/weather_plugin.aether")
        )
        .expect("fixture")
    );
    let learner = read("tree/neurocode/learner.aether");
    assert!(learner.contains("\nlearn from \"build_logs\"\nsuggest \"cache the dependencies\"\n\nwhen user_requested:\n    narrate(\"a user asked for help\")\n"), "{learner}");

    let after = check(d);
    // Every file whose constructs all have a faithful mapping checks with no parse error.
    for file in [
        "tree/goal_priority.aether",
        "tree/mixed/model_config.aether",
        "tree/neurocode/assistant.aether",
        "tree/neurocode/assistant_backup.aether",
        "tree/neurocode/memory_loop.aether",
    ] {
        let f = after.iter().find(|f| f.0 == file).expect("checked");
        assert_eq!(f.1, "SUCCESS", "{file}: {:?}", f.2);
    }
    assert_eq!(after.iter().filter(|f| f.1 == "PARSE_ERROR").count(), 4);
    assert_eq!(total_diagnostics(&after), 16);
    assert!(total_diagnostics(&after) * 2 <= total_diagnostics(&before));

    // A second migration changes nothing.
    let again = run_in(d, &["migrate", "tree", "--check", "--no-report"]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.is_empty(), "{}", again.stdout);

    // Re-classify: the failure count falls.
    let doc = classify(d);
    assert_eq!(doc["summary"]["failed"], 4);
    assert_eq!(doc["summary"]["duplicates"]["distinct_failed"], 3);
}

/// `check --format json` of one source text: (rule, message, help) of each diagnostic.
fn diagnostics_of(src: &str) -> Vec<(String, String, String)> {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("x.aether"), src).expect("write");
    let res = run_in(dir.path(), &["check", "x.aether", "--format", "json"]);
    let doc: Value = serde_json::from_str(&res.stdout).expect("JSON report");
    doc[0]["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            (s("rule"), s("message"), s("help"))
        })
        .collect()
}

#[test]
fn diagnostics_a_new_user_needs() {
    let one = |src: &str| {
        let d = diagnostics_of(src);
        assert_eq!(d.len(), 1, "{src}: {d:?}");
        d.into_iter().next().expect("one")
    };
    let d = one("goal: \"x\"\nlet x = 1\nif x > 1:\n    print(1)\neles:\n    print(2)\n");
    assert_eq!(d.0, "A001");
    assert_eq!(d.2, "did you mean `else:`? `eles` is not a keyword");
    let d = one("goal: \"x\"\nlet x = 1\nif x = 1:\n    print(1)\n");
    assert_eq!(d.2, "to compare, write `==`; a single `=` assigns");
    let d = one("goal: \"x\"\naction build():\n    return 1\nworkflow w:\n    steps:\n        - build retires=2\n");
    assert_eq!(d.0, "A124");
    assert!(d.2.starts_with("did you mean `retry`?"), "{d:?}");
    let d = one("goal: \"x\"\nlet xs = [1]\nprint(lenght(xs))\n");
    assert_eq!(
        (d.0.as_str(), d.2.as_str()),
        ("A101", "did you mean `len`?")
    );
    let d = one("goal: \"x\"\nprint(\"retries: \" + 3)\n");
    assert_eq!(d.0, "A132");
    let d = one("goal: \"x\"\nsleep \"5s\"\n");
    assert_eq!(
        (d.0.as_str(), d.2.as_str()),
        ("A133", "write the duration without quotes: `sleep 5s`")
    );
    let d = one("goal: \"x\"\nwhile true:\n    print(1)\n");
    assert_eq!(d.0, "A207");
    assert!(
        diagnostics_of("goal: \"x\"\npolicy:\n    timeout: 1m\nwhile true:\n    print(1)\n")
            .is_empty()
    );
    // `$x` at a line start: the invalid character only, no false "unexpected indentation".
    let d = diagnostics_of("goal: \"x\"\n$today = \"mon\"\n@x = 1\n");
    let rules: Vec<&str> = d.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(rules, ["A007", "A007"], "{d:?}");
    // `gpt-4o` and `100_MB` are text to quote, not durations with a nonsense suggestion.
    let d = diagnostics_of(
        "goal: \"x\"\nmeta:\n    model: gpt-4o\n    retention: 90_days\n    cache: 100_MB\n",
    );
    let got: Vec<(&str, &str)> = d.iter().map(|d| (d.0.as_str(), d.2.as_str())).collect();
    assert_eq!(
        got,
        [
            (
                "A420",
                "write `model: \"gpt-4o\"`; `aether migrate` quotes it for you"
            ),
            (
                "A420",
                "write `retention: \"90_days\"`; `aether migrate` quotes it for you"
            ),
            (
                "A420",
                "write `cache: \"100_MB\"`; `aether migrate` quotes it for you"
            ),
        ]
    );
    // A mistyped duration stays a duration error.
    let d = one("goal: \"x\"\npolicy:\n    timeout: 5min\n");
    assert_eq!(d.0, "A005");
}
