//! Parser fixtures: `resources/valid` parse cleanly (AST snapshots), `resources/invalid` report the expected rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use aether_syntax::diagnostic::render_plain;
use aether_syntax::{parse, rules, Diagnostic, LineIndex};

/// Invalid fixture stem -> (expected rule name of the first diagnostic, its 1-based line).
/// Every file in `resources/invalid` needs an entry, and every entry a file.
const EXPECTED: &[(&str, &str, u32)] = &[
    ("agent_block", "unsupported-block", 5),
    ("chained_comparison", "syntax-error", 8),
    ("duration_trailing_letter", "invalid-duration-unit", 4),
    ("inconsistent_dedent", "inconsistent-dedent", 8),
    ("integer_overflow", "integer-overflow", 4),
    ("invalid_assignment_target", "invalid-assignment-target", 5),
    ("invalid_character", "invalid-character", 5),
    ("invalid_duration_unit", "invalid-duration-unit", 5),
    ("invalid_escape", "invalid-escape", 4),
    ("invalid_type_hint", "invalid-type-hint", 8),
    ("list_item_outside_list", "list-item-outside-list", 7),
    ("memory_statement_not_call", "memory-statement-not-call", 8),
    ("misplaced_step_option", "misplaced-step-option", 7),
    ("missing_block_body", "syntax-error", 7),
    ("missing_colon_after_if", "syntax-error", 5),
    ("multiple_errors", "syntax-error", 6),
    ("newline_in_string", "unterminated-string", 4),
    ("on_error_malformed", "malformed-on-error-rule", 6),
    ("on_error_quoted_kind", "malformed-on-error-rule", 6),
    ("nesting_too_deep", "nesting-too-deep", 3),
    ("tab_indentation", "tab-indentation", 6),
    ("unclosed_bracket", "unclosed-bracket", 7),
    ("unexpected_closing_bracket", "unmatched-bracket", 4),
    ("unexpected_indent", "syntax-error", 6),
    ("unexpected_token", "syntax-error", 5),
    ("unquoted_goal", "unquoted-goal", 2),
    ("unterminated_string", "unterminated-string", 5),
    ("visualize_block", "unsupported-block", 6),
];

/// Rules no fixture can show: not valid UTF-8 (a `&str` cannot hold it) and the CLI-level ones.
const NOT_PARSER_RULES: &[&str] = &["A018", "A020", "A021"];

fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .expect("UTF-8 file name")
        .to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn line_of(src: &str, index: &LineIndex, d: &Diagnostic) -> u32 {
    index.line_col(src, d.span().start).line
}

#[test]
fn valid_fixtures_parse_without_diagnostics() {
    insta::glob!("../resources/valid", "*.aether", |path| {
        let src = read(path);
        let parsed = parse(&src);
        assert!(
            parsed.diagnostics.is_empty(),
            "{} should parse cleanly:\n{}",
            path.display(),
            render_plain(&src, &parsed.diagnostics)
        );
        insta::assert_debug_snapshot!(parsed.ast);
    });
}

#[test]
fn invalid_fixtures_report_the_expected_rule() {
    let expected: BTreeMap<&str, (&str, u32)> = EXPECTED
        .iter()
        .map(|(stem, rule, line)| (*stem, (*rule, *line)))
        .collect();
    insta::glob!("../resources/invalid", "*.aether", |path| {
        let src = read(path);
        let stem = stem(path);
        let parsed = parse(&src);
        let index = LineIndex::new(&src);
        assert!(
            !parsed.diagnostics.is_empty(),
            "{stem}: expected at least one diagnostic"
        );
        assert!(
            parsed.has_errors(),
            "{stem}: expected an error, not only warnings"
        );
        let Some(&(rule, line)) = expected.get(stem.as_str()) else {
            panic!("{stem}: add it to EXPECTED with the rule and line its top comment names");
        };
        let first = &parsed.diagnostics[0];
        assert_eq!(
            first.rule().name,
            rule,
            "{stem}: first diagnostic is {}",
            first.message()
        );
        assert_eq!(
            line_of(&src, &index, first),
            line,
            "{stem}: first diagnostic on the wrong line"
        );
        insta::assert_snapshot!(render_plain(&src, &parsed.diagnostics));
    });
}

#[test]
fn every_expected_entry_has_a_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/invalid");
    for (stem, _, _) in EXPECTED {
        assert!(
            dir.join(format!("{stem}.aether")).is_file(),
            "no fixture for {stem}"
        );
    }
}

#[test]
fn multiple_errors_are_all_reported() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/invalid/multiple_errors.aether");
    let src = read(&path);
    let parsed = parse(&src);
    let index = LineIndex::new(&src);
    let lines: BTreeSet<u32> = parsed
        .diagnostics
        .iter()
        .map(|d| line_of(&src, &index, d))
        .collect();
    assert!(
        parsed.diagnostics.len() >= 3,
        "{}",
        render_plain(&src, &parsed.diagnostics)
    );
    assert_eq!(lines, BTreeSet::from([6, 8, 11]));
    assert!(parsed
        .diagnostics
        .iter()
        .all(|d| d.rule().name == "syntax-error"));
}

#[test]
fn every_parser_rule_has_an_invalid_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/invalid");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("resources/invalid exists") {
        let path = entry.expect("readable dir entry").path();
        if path.extension().is_some_and(|e| e == "aether") {
            for d in parse(&read(&path)).diagnostics {
                seen.insert(d.rule().id);
            }
        }
    }
    let missing: Vec<&str> = rules::ALL
        .iter()
        .map(|r| r.id)
        .filter(|id| !NOT_PARSER_RULES.contains(id) && !seen.contains(id))
        .collect();
    assert!(missing.is_empty(), "no invalid fixture shows {missing:?}");
}

#[test]
fn diagnostics_are_sorted_and_positions_are_one_based() {
    let src = "goal: \"g\"\nlet a = 1 +\nlet b = $\n";
    let parsed = parse(src);
    let index = LineIndex::new(src);
    let positions: Vec<(u32, u32)> = parsed
        .diagnostics
        .iter()
        .map(|d| {
            let lc = index.line_col(src, d.span().start);
            (lc.line, lc.column)
        })
        .collect();
    // `1 +` ends at column 12 of line 2; `$` is column 9 of line 3.
    assert_eq!(positions, vec![(2, 12), (3, 9)]);
}

#[test]
fn crlf_positions_match_lf_positions() {
    let lf = "goal: \"g\"\nif x > 1\n    print(x)\n";
    let crlf = lf.replace('\n', "\r\n");
    let at = |src: &str| {
        let parsed = parse(src);
        let index = LineIndex::new(src);
        parsed
            .diagnostics
            .iter()
            .map(|d| {
                let lc = index.line_col(src, d.span().start);
                (d.rule().id, lc.line, lc.column)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(at(lf), at(&crlf));
    assert_eq!(at(lf), vec![("A001", 2, 9)]);
}
