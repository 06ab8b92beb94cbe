//! One fixture per checker rule (`tests/rules/<ID>.aether`), snapshotted as source then diagnostics.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aether_check::codes::CHECK_RULES;
use aether_check::{analyze, codes};
use aether_syntax::diagnostic::render_plain;
use aether_syntax::Diagnostic;

use common::registry;

/// The rule ids of `diags`, in order.
fn ids(diags: &[Diagnostic]) -> Vec<&'static str> {
    diags.iter().map(|d| d.rule().id).collect()
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Rule ids a fixture's header declares as unavoidable companions: `# also: A204 ...`.
fn also_expected(src: &str) -> BTreeSet<String> {
    src.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# also:"))
        .flat_map(|l| l.split(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| {
            w.len() == 4 && w.starts_with('A') && w[1..].bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn each_fixture_triggers_its_rule() {
    let registry = registry();
    insta::glob!("rules", "*.aether", |path| {
        let src = read(path);
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("fixture named after its id");
        let rule = codes::find(id).unwrap_or_else(|| panic!("{id}.aether names no rule"));
        assert!(
            src.starts_with(&format!("# {id} {}:", rule.name)),
            "{id}.aether must open with `# {id} {}: ...`",
            rule.name
        );
        let diags = analyze(&src, &registry).diagnostics;
        let emitted: BTreeSet<String> = ids(&diags).into_iter().map(str::to_string).collect();
        assert!(
            emitted.contains(id),
            "{id} not emitted:\n{}",
            render_plain(&src, &diags)
        );
        let mut allowed = also_expected(&src);
        allowed.insert(id.to_string());
        assert_eq!(
            emitted,
            allowed,
            "{id}: other rules fired:\n{}",
            render_plain(&src, &diags)
        );
        // Diagnostics come sorted by position (then id), so output is deterministic.
        let starts: Vec<u32> = diags.iter().map(|d| d.span().start).collect();
        assert!(
            starts.windows(2).all(|w| w[0] <= w[1]),
            "{id}: diagnostics not sorted"
        );
        insta::assert_snapshot!(render_plain(&src, &diags));
    });
}

#[test]
fn every_check_rule_has_a_fixture() {
    let dir = rules_dir();
    // Signature rules (A3xx) are raised by the CLI before checking; tests/cli_sign.rs covers them.
    let missing: Vec<&str> = CHECK_RULES
        .iter()
        .map(|r| r.id)
        .filter(|id| !id.starts_with("A3"))
        .filter(|id| !dir.join(format!("{id}.aether")).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "no fixture in tests/rules for {missing:?}"
    );
}

#[test]
fn every_fixture_names_a_check_rule() {
    for entry in std::fs::read_dir(rules_dir()).expect("tests/rules exists") {
        let path = entry.expect("readable dir entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        assert!(
            CHECK_RULES.iter().any(|r| r.id == stem),
            "{} is not named after a checker rule id",
            path.display()
        );
    }
}

#[test]
fn warnings_do_not_make_a_script_fail() {
    // Every A2xx fixture yields only warnings.
    let registry = registry();
    for rule in CHECK_RULES.iter().filter(|r| r.id.starts_with("A2")) {
        let src = read(&rules_dir().join(format!("{}.aether", rule.id)));
        let diags = analyze(&src, &registry).diagnostics;
        assert!(
            diags.iter().all(|d| !d.is_error()),
            "{}: {:?}",
            rule.id,
            ids(&diags)
        );
    }
}

#[test]
fn parse_errors_suppress_validation() {
    // `undefined_name` would be A103, but the syntax error on line 3 stops validation.
    let src = "goal: \"g\"\nprint(undefined_name)\nlet x = (1 +\n";
    let diags = analyze(src, &registry()).diagnostics;
    assert_eq!(ids(&diags), vec!["A010"]);
}

#[test]
fn duplicate_parameter_forms_with_the_same_names() {
    // The common shape of this mistake repeats the header's names in `inputs:`; duplicates
    // are looked for within each form, so A116 alone reports it.
    let src = "goal: \"g\"\naction resize(pool, size):\n    inputs: [pool, size = 4]\n    return size\nprint(resize(\"w\", 8))\n";
    let diags = analyze(src, &registry()).diagnostics;
    assert_eq!(ids(&diags), vec!["A116"]);
}
