//! The contract's examples: docs/contract/LANGUAGE.md forms check clean, the seeds fail only on names the stdlib lacks.

use std::path::Path;

use aether_check::decl::Registry;
use aether_syntax::{Diagnostic, Severity};

fn registry() -> Registry {
    aether_runtime::function_table().registry().clone()
}

fn fixtures(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .expect("fixture directory exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "aether"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {dir}");
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("UTF-8 fixture"))
        })
        .collect()
}

fn describe(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| format!("{} {}: {}", d.rule().id, d.rule().name, d.message()))
        .collect()
}

/// Rules that mean "a name the stdlib (or this file) does not define".
const UNDEFINED_NAME_RULES: &[&str] = &[
    "unknown-function",
    "unknown-module",
    "unknown-module-member",
    "undefined-variable",
];

#[test]
fn language_fixtures_check_clean() {
    let reg = registry();
    for (name, src) in fixtures("tests/fixtures/language") {
        let diags = aether_check::analyze(&src, &reg).diagnostics;
        if name.ends_with("_undefined.aether") {
            let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
            assert!(!errors.is_empty(), "{name}: expected undefined-name errors");
            for d in errors {
                assert!(
                    UNDEFINED_NAME_RULES.contains(&d.rule().name),
                    "{name}: unexpected {:?}",
                    describe(&diags)
                );
            }
        } else if name.ends_with("_warning.aether") {
            assert!(
                !diags.is_empty() && diags.iter().all(|d| d.severity() == Severity::Warning),
                "{name}: expected only warnings, got {:?}",
                describe(&diags)
            );
        } else {
            assert!(
                diags.is_empty(),
                "{name}: expected no diagnostics, got {:?}",
                describe(&diags)
            );
        }
    }
}

#[test]
fn seed_workflows_fail_only_on_names_the_stdlib_lacks() {
    let reg = registry();
    for (name, src) in fixtures("tests/fixtures/seeds") {
        let diags = aether_check::analyze(&src, &reg).diagnostics;
        let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
        assert!(
            !errors.is_empty(),
            "{name}: the seeds call functions we do not define"
        );
        for d in &errors {
            assert!(
                UNDEFINED_NAME_RULES.contains(&d.rule().name),
                "{name}: {:?}",
                describe(&diags)
            );
        }
    }
}

#[test]
fn reference_workflows_check_clean() {
    let reg = registry();
    for (name, src) in fixtures("workflows") {
        let diags = aether_check::analyze(&src, &reg).diagnostics;
        assert!(diags.is_empty(), "{name}: {:?}", describe(&diags));
    }
}
